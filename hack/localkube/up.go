package main

// `localkube up` runs one whole local control plane and supervises it until SIGINT/SIGTERM: embedded etcd in this
// process, kube-apiserver, kube-controller-manager and kube-scheduler as child processes of this same binary, and
// the node simulator in this process. Children get a parent-death signal, so killing the supervisor (even with
// SIGKILL) never leaves a component behind. Everything lives under --dir: a fresh etcd data dir and PKI on every
// start, logs/, kubeconfig, and state.json (written last, once the cluster is usable).
//
// API outage drills (tests/integration/test_faults.py, hack/chaos): SIGUSR1 stops kube-apiserver, then etcd;
// SIGUSR2 starts etcd again on the same data and kube-apiserver on the same port, PKI and flags. Clients see
// connection refused for as long as the API is stopped, then the same cluster back, as after a control-plane
// restart; controller-manager, scheduler and the node simulator keep running meanwhile and are restarted after the
// API (see below). state.json's "api" field says "stopped" or "running" once each transition is complete.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

type upOptions struct {
	dir        string
	nodes      int
	nodeCPU    string
	nodeMemory string
	nodePods   int
	verbosity  int
	realNode   bool
	node       realNodeOptions
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// state is what `plinth cluster` reads to find and stop the cluster.
type state struct {
	PID        int               `json:"pid"`
	Server     string            `json:"server"`
	Kubeconfig string            `json:"kubeconfig"`
	Ports      map[string]int    `json:"ports"`
	Children   map[string]int    `json:"children"`
	Nodes      []string          `json:"nodes"`
	Version    string            `json:"version"`
	Published  map[string]string `json:"published,omitempty"` // real node: name -> 127.0.0.1:port on the host
	API        string            `json:"api"`                 // "running", or "stopped" during an outage drill (SIGUSR1/SIGUSR2)
}

func runUp(args []string) int {
	opts := upOptions{}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.StringVar(&opts.dir, "dir", "", "directory for this cluster's data, PKI, logs and kubeconfig (required)")
	fs.IntVar(&opts.nodes, "nodes", 1, "number of simulated nodes")
	fs.StringVar(&opts.nodeCPU, "node-cpu", "32", "allocatable CPU of each simulated node")
	fs.StringVar(&opts.nodeMemory, "node-memory", "64Gi", "allocatable memory of each simulated node")
	fs.IntVar(&opts.nodePods, "node-pods", 250, "allocatable pods of each simulated node")
	fs.IntVar(&opts.verbosity, "v", 0, "log verbosity of the Kubernetes components")
	fs.BoolVar(&opts.realNode, "real-node", false, "run one real node (kubelet, kube-proxy, containerd) instead of simulated ones")
	fs.StringVar(&opts.node.containerd, "containerd", "", "real node: the containerd binary")
	fs.StringVar(&opts.node.shim, "containerd-shim", "", "real node: the containerd-shim-runc-v2 binary")
	fs.StringVar(&opts.node.ctr, "ctr", "", "real node: the ctr binary (imports the images)")
	fs.StringVar(&opts.node.runc, "runc", "/usr/sbin/runc", "real node: the runc binary")
	fs.StringVar(&opts.node.cniBin, "cni-bin", "/usr/lib/cni", "real node: the directory of the CNI plugins")
	fs.StringVar(&opts.node.sandboxImage, "sandbox-image", "plinth.local/pause:3.10", "real node: the Pod sandbox image (must be among --image)")
	fs.Func("image", "real node: an OCI archive to import into containerd (repeatable)", func(v string) error {
		opts.node.images = append(opts.node.images, v)
		return nil
	})
	fs.Func("publish", "real node: name=address to forward from a port on the host's 127.0.0.1 to address inside the node (repeatable)", func(v string) error {
		opts.node.publish = append(opts.node.publish, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if opts.dir == "" {
		fmt.Fprintln(os.Stderr, "localkube up: --dir is required")
		return 2
	}
	if opts.realNode && (opts.node.containerd == "" || opts.node.shim == "" || opts.node.ctr == "") {
		fmt.Fprintln(os.Stderr, "localkube up: --real-node needs --containerd, --containerd-shim and --ctr")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := up(ctx, opts); err != nil {
		fmt.Fprintf(os.Stderr, "localkube up: %v\n", err)
		return 1
	}
	return 0
}

func up(ctx context.Context, opts upOptions) (err error) {
	dir, err := filepath.Abs(opts.dir)
	if err != nil {
		return err
	}
	statePath := filepath.Join(dir, "state.json")
	_ = os.Remove(statePath)
	for _, sub := range []string{"etcd", "pki"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	defer os.Remove(statePath)

	// Each port is free when picked, but nothing holds it until its component binds, so the kernel may hand the same
	// one out twice (seen: the scheduler given the API server's port). Pick until all five differ.
	ports := map[string]int{}
	taken := map[int]bool{}
	for _, name := range []string{"etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler"} {
		for ports[name] == 0 || taken[ports[name]] {
			if ports[name], err = freePort(); err != nil {
				return err
			}
		}
		taken[ports[name]] = true
	}
	certs, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return fmt.Errorf("generating PKI: %w", err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", ports["apiserver"])
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, certs.caPEM, certs.adminPEM, certs.adminKP); err != nil {
		return err
	}

	logger := log.New(os.Stderr, "localkube ", log.LstdFlags|log.Lmicroseconds)
	var node *realNode
	var egressArgs []string
	if opts.realNode {
		// The API server reaches the node (kubelet, Services) only through this proxy (see netns.go).
		// A Unix socket: the API server's TCP transport to an egress proxy requires mutual TLS.
		egressSocket := filepath.Join(dir, "egress.sock")
		_ = os.Remove(egressSocket)
		egress, err := net.Listen("unix", egressSocket)
		if err != nil {
			return err
		}
		go connectProxy(ctx, egress, func() *netns {
			if node == nil {
				return nil
			}
			return node.ns
		}, logger)
		egressFile := filepath.Join(certs.dir, "egress-selector.yaml")
		if err := os.WriteFile(egressFile, []byte(fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, egressSocket)), 0o600); err != nil {
			return err
		}
		egressArgs = []string{
			"--egress-selector-config-file=" + egressFile,
			// The `kubernetes` Service's endpoint: the node forwards this address and port to the API server.
			"--advertise-address=" + nodeIP,
			"--kubelet-client-certificate=" + certs.adminCert, "--kubelet-client-key=" + certs.adminKey,
			// The node's name resolves nowhere; its address is reached through the egress proxy.
			"--kubelet-preferred-address-types=InternalIP",
		}
	} else {
		egressArgs = []string{
			"--advertise-address=127.0.0.1",
			// Loopback is not a routable address for the kubernetes Service endpoints; nothing in-cluster dials it.
			"--endpoint-reconciler-type=none",
		}
	}

	etcdDir, etcdLog := filepath.Join(dir, "etcd"), filepath.Join(logDir, "etcd.log")
	etcd, err := startEtcd(etcdDir, etcdLog, ports)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer func() {
		if etcd != nil {
			etcd.Close()
		}
	}()

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var children []*child
	defer func() { stopChildren(children) }()
	v := strconv.Itoa(opts.verbosity)

	apiserverArgs := []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-client"]),
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports["apiserver"]),
		"--cert-dir=" + certs.dir,
		"--tls-cert-file=" + certs.serverCert, "--tls-private-key-file=" + certs.serverKey,
		"--client-ca-file=" + certs.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + certs.saPub, "--service-account-signing-key-file=" + certs.saKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=" + v,
	}
	apiserverArgs = append(apiserverArgs, egressArgs...)
	apiserver, err := startChild(exe, "kube-apiserver", logDir, false, apiserverArgs...)
	if err != nil {
		return err
	}
	children = append(children, apiserver)
	if err := waitReady(ctx, server+"/readyz", certs, apiserver, 3*time.Minute); err != nil {
		return fmt.Errorf("kube-apiserver did not become ready (see %s): %w", filepath.Join(logDir, "kube-apiserver.log"), err)
	}

	common := []string{
		"--kubeconfig=" + kubeconfig, "--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--v=" + v,
	}
	cmArgs := append(append([]string{}, common...),
		"--secure-port="+strconv.Itoa(ports["controller-manager"]),
		"--service-account-private-key-file="+certs.saKey,
		"--root-ca-file="+certs.caCert,
		"--cluster-signing-cert-file="+certs.caCert, "--cluster-signing-key-file="+certs.caKey,
		"--use-service-account-credentials=false",
		// A local cluster serves one client: let the controllers talk to it at full speed.
		"--kube-api-qps=200", "--kube-api-burst=400",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--concurrent-namespace-syncs=10", "--concurrent-gc-syncs=40",
	)
	if opts.realNode { // kube-proxy and the network policy agent read the node's podCIDR
		cmArgs = append(cmArgs, "--allocate-node-cidrs=true", "--cluster-cidr="+clusterCIDR, "--node-cidr-mask-size=24")
	}
	cm, err := startChild(exe, "kube-controller-manager", logDir, false, cmArgs...)
	if err != nil {
		return err
	}
	children = append(children, cm)
	schedArgs := append(append([]string{}, common...), "--secure-port="+strconv.Itoa(ports["scheduler"]))
	sched, err := startChild(exe, "kube-scheduler", logDir, false, schedArgs...)
	if err != nil {
		return err
	}
	children = append(children, sched)

	simLog := filepath.Join(logDir, "nodesim.log")
	_ = os.Remove(simLog)
	var sim *nodeSimulator
	var simErr chan error
	cancelSim := func() {}
	defer func() { cancelSim() }()
	startSim := func() error {
		if sim, err = newNodeSimulator(server, certs, opts, simLog); err != nil {
			return err
		}
		simErr = make(chan error, 1)
		var simCtx context.Context
		simCtx, cancelSim = context.WithCancel(ctx)
		go func(s *nodeSimulator) { simErr <- s.Run(simCtx) }(sim)
		if err := sim.WaitRegistered(ctx, time.Minute); err != nil {
			return fmt.Errorf("node simulator: %w", err)
		}
		return nil
	}
	var nodeNames []string
	var nodeExit <-chan error
	published := map[string]string{}
	if opts.realNode {
		if node, err = startRealNode(ctx, dir, exe, opts.node, certs, ports["apiserver"], logDir, logger); err != nil {
			return err
		}
		defer node.stop()
		if err := waitNodeReady(ctx, server, certs, node, 3*time.Minute); err != nil {
			return fmt.Errorf("%w (see %s)", err, filepath.Join(logDir, "kubelet.log"))
		}
		nodeNames, nodeExit, published = []string{realNodeName}, node.done, node.published
	} else {
		if err := startSim(); err != nil {
			return err
		}
		nodeNames = sim.NodeNames()
	}

	st := state{
		PID: os.Getpid(), Server: server, Kubeconfig: kubeconfig, Ports: ports, Published: published,
		Children: map[string]int{}, Nodes: nodeNames, Version: kubeVersion, API: "running",
	}
	for _, c := range children {
		st.Children[c.name] = c.cmd.Process.Pid
	}
	if err := writeState(statePath, st); err != nil {
		return err
	}
	fmt.Printf("localkube: cluster ready at %s (kubeconfig %s)\n", server, kubeconfig)

	control := make(chan os.Signal, 1)
	signal.Notify(control, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(control)
	others := firstExit(children[1:]) // controller-manager, scheduler
	apiExit, etcdErr := firstExit(children[:1]), etcd.Err()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("localkube: shutting down")
			return nil
		case err := <-simErr:
			return fmt.Errorf("node simulator stopped: %w", err)
		case err := <-nodeExit:
			return err
		case err := <-etcdErr:
			return fmt.Errorf("etcd stopped: %w", err)
		case err := <-others:
			return err
		case err := <-apiExit:
			return err
		case sig := <-control:
			switch {
			case sig == syscall.SIGUSR1 && st.API == "running":
				fmt.Println("localkube: stopping kube-apiserver and etcd (outage drill)")
				apiExit, etcdErr = nil, nil
				// It stops listening at once on SIGTERM, but may linger draining watches: do not wait for that.
				stopChildrenWithin(children[:1], 2*time.Second)
				etcd.Close()
				etcd = nil
				st.API = "stopped"
				delete(st.Children, apiserver.name)
			case sig == syscall.SIGUSR2 && st.API == "stopped":
				fmt.Println("localkube: starting etcd and kube-apiserver again")
				if etcd, err = startEtcd(etcdDir, etcdLog, ports); err != nil {
					return fmt.Errorf("restarting etcd: %w", err)
				}
				if apiserver, err = startChild(exe, "kube-apiserver", logDir, true, apiserverArgs...); err != nil {
					return err
				}
				children[0] = apiserver
				if err := waitReady(ctx, server+"/readyz", certs, apiserver, 3*time.Minute); err != nil {
					return fmt.Errorf("restarted kube-apiserver did not become ready: %w", err)
				}
				apiExit, etcdErr = firstExit(children[:1]), etcd.Err()
				// The other components restart too, as after a control-plane restart (with leader election on, they
				// exit once they cannot renew their lease): client-go's reconnect back-off (up to 30 s, jittered)
				// would otherwise keep their caches stale for a minute, and the drill would measure that.
				stopChildrenWithin(children[1:], 2*time.Second)
				if sim != nil {
					cancelSim()
					<-simErr
				}
				if children[1], err = startChild(exe, "kube-controller-manager", logDir, true, cmArgs...); err != nil {
					return err
				}
				if children[2], err = startChild(exe, "kube-scheduler", logDir, true, schedArgs...); err != nil {
					return err
				}
				others = firstExit(children[1:])
				if sim != nil { // a real kubelet reconnects by itself
					if err := startSim(); err != nil {
						return err
					}
				}
				st.API = "running"
				for _, c := range children {
					st.Children[c.name] = c.cmd.Process.Pid
				}
			default:
				continue // already in the state asked for
			}
			if err := writeState(statePath, st); err != nil {
				return err
			}
		}
	}
}

func writeState(path string, st state) error {
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func startEtcd(dataDir, logFile string, ports map[string]int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "localkube"
	cfg.Dir = dataDir
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-client"]))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-peer"]))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A disposable cluster: durability buys nothing, fsync costs a lot on shared disks.
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{logFile}
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	cfg.QuotaBackendBytes = 4 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(time.Minute):
		e.Close()
		return nil, errors.New("etcd did not become ready within a minute")
	}
}

// startChild starts one component; a restarted one (restart=true) appends to its log instead of truncating it.
func startChild(exe, name, logDir string, restart bool, args ...string) (*child, error) {
	mode := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if restart {
		mode = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logFile, err := os.OpenFile(filepath.Join(logDir, name+".log"), mode, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{name}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		if err == nil {
			err = errors.New("exited")
		}
		c.done <- fmt.Errorf("%s stopped unexpectedly (see %s): %w", name, logFile.Name(), err)
	}()
	return c, nil
}

func firstExit(children []*child) <-chan error {
	out := make(chan error, len(children))
	for _, c := range children {
		go func(c *child) {
			err := <-c.done
			c.done <- err // keep it for stopChildren
			out <- err
		}(c)
	}
	return out
}

// stopChildren stops components in reverse start order: SIGTERM, then SIGKILL after a grace period.
func stopChildren(children []*child) { stopChildrenWithin(children, 10*time.Second) }

func stopChildrenWithin(children []*child, grace time.Duration) {
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-c.done:
			c.done <- err // keep it for firstExit and a later stop (a drill may stop a child twice)
		case <-time.After(grace):
			_ = c.cmd.Process.Kill()
			err := <-c.done
			c.done <- err
		}
	}
}

func waitReady(ctx context.Context, endpoint string, certs *pki, c *child, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certs.caPEM)
	pair, err := tls.X509KeyPair(certs.adminPEM, certs.adminKP)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(endpoint)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %d", endpoint, resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-c.done:
			c.done <- err
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out after %s: %v", timeout, last)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeKubeconfig writes a kubeconfig with everything inlined, so it stays valid when copied elsewhere.
func writeKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte) error {
	b64 := base64.StdEncoding.EncodeToString
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: plinth-local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: plinth-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: plinth-local
  context:
    cluster: plinth-local
    user: plinth-admin
current-context: plinth-local
`, server, b64(caPEM), b64(certPEM), b64(keyPEM))
	return os.WriteFile(path, []byte(content), 0o600)
}
