package main

// A real node: kubelet, kube-proxy and containerd 2 (with runc and the CNI plugins) in namespaces of their own, the
// way kind runs a node in a container, without a container engine to make that container.
//
// `up --real-node` starts `localkube node-init` with new network, PID, mount, UTS and IPC namespaces. As PID 1 of
// the node it mounts what must stay private to the node (a fresh /proc, tmpfs over /run, /var/lib/cni and
// /var/log, its own /etc/resolv.conf), gives the node an address on an interface of its own and a default route into it
// (so nothing leaves: there is no route out of the node), starts containerd, imports the locally built images
// into it (no registry is reachable), then the kubelet and kube-proxy, and reaps every orphan (containerd's shims
// re-parent to it). Pods get their own network namespaces on a bridge inside the node's.
//
// Teardown is the kernel's: when node-init exits, every process in its PID namespace is killed, and the node's
// network namespace (its bridge, veths, nftables rules, conntrack) and mount namespace (container root
// filesystems, volumes, Pods' network namespaces) go with their last process. What stays on the host is removed by
// the supervisor: the Pods' cgroups and the node's directory.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The node's addresses exist only inside its network namespace, so every cluster uses the same ones.
const (
	realNodeName = "plinth-node-0"
	nodeIP       = "10.243.0.1"
	clusterCIDR  = "10.244.0.0/16"
	podCIDR      = "10.244.0.0/24" // the first node's share of clusterCIDR, as the node-ipam controller assigns it
	podGateway   = "10.244.0.1"
	serviceCIDR  = "10.96.0.0/16"
	clusterDNS   = "10.96.0.10"
)

// realNodeOptions are the node's binaries and images; `plinth cluster up --nodes real` builds and passes them.
type realNodeOptions struct {
	containerd, shim, ctr, runc, cniBin string
	sandboxImage                        string
	images                              []string // OCI archives imported into containerd before the kubelet starts
	publish                             []string // name=address: host 127.0.0.1 port -> address inside the node
}

// nodeSpec is what the supervisor hands node-init (as JSON: the node has no other way to be told).
type nodeSpec struct {
	Name        string   `json:"name"`
	IP          string   `json:"ip"`
	Dir         string   `json:"dir"`
	LogDir      string   `json:"logDir"`
	Exe         string   `json:"exe"`
	Containerd  string   `json:"containerd"`
	Shim        string   `json:"shim"`
	Ctr         string   `json:"ctr"`
	Socket      string   `json:"socket"`
	Images      []string `json:"images"`
	KubeletArgs []string `json:"kubeletArgs"`
	ProxyArgs   []string `json:"proxyArgs"`
}

type realNode struct {
	ns        *netns
	cmd       *exec.Cmd
	done      chan error
	published map[string]string
	cgroup    string
}

func nodeCgroup(dir string) string {
	return "/plinth/" + fmt.Sprintf("%08x", fnv32(dir))
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// startRealNode writes the node's configuration, starts node-init in new namespaces and opens the doors between
// the node and the host (see netns.go). It returns once node-init runs; waitNodeReady waits for the kubelet.
func startRealNode(ctx context.Context, dir, exe string, opts realNodeOptions, certs *pki, apiPort int, logDir string, logger *log.Logger) (*realNode, error) {
	nodeDir := filepath.Join(dir, "node")
	cgroup := nodeCgroup(dir)
	removeCgroups(cgroup) // left by a supervisor that was killed
	if err := makeCgroups(cgroup); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(nodeDir); err != nil {
		return nil, fmt.Errorf("removing the previous node's files: %w", err)
	}
	for _, sub := range []string{"kubelet", "containerd/root", "containerd/state", "cni/net.d", "cni/ipam", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(nodeDir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	inNode := fmt.Sprintf("https://127.0.0.1:%d", apiPort) // the forwarder below serves the API inside the node
	for _, c := range []struct{ name, cn, org string }{
		{"kubelet", "system:node:" + realNodeName, "system:nodes"},
		{"kube-proxy", "system:kube-proxy", ""},
	} {
		var orgs []string
		if c.org != "" {
			orgs = []string{c.org}
		}
		cert, key, err := certs.clientCert(c.name, c.cn, orgs...)
		if err != nil {
			return nil, err
		}
		if err := writeKubeconfig(filepath.Join(nodeDir, c.name+".kubeconfig"), inNode, certs.caPEM, cert, key); err != nil {
			return nil, err
		}
	}
	socket := filepath.Join(nodeDir, "containerd", "containerd.sock")
	files := map[string]string{
		"containerd/config.toml":       containerdConfig(nodeDir, socket, opts),
		"cni/net.d/10-plinth.conflist": cniConfig(nodeDir),
		"kubelet.yaml":                 kubeletConfig(nodeDir, socket, certs.caCert, cgroup),
		"kube-proxy.yaml":              kubeProxyConfig(nodeDir),
		// Pods with dnsPolicy Default get no nameserver: nothing outside the cluster answers.
		"resolv.conf": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(nodeDir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	spec := nodeSpec{
		Name: realNodeName, IP: nodeIP, Dir: nodeDir, LogDir: logDir, Exe: exe,
		Containerd: opts.containerd, Shim: opts.shim, Ctr: opts.ctr, Socket: socket, Images: opts.images,
		KubeletArgs: []string{
			"--config=" + filepath.Join(nodeDir, "kubelet.yaml"),
			"--kubeconfig=" + filepath.Join(nodeDir, "kubelet.kubeconfig"),
			"--root-dir=" + filepath.Join(nodeDir, "kubelet"),
			"--cert-dir=" + filepath.Join(nodeDir, "kubelet", "pki"),
			"--hostname-override=" + realNodeName,
			"--node-ip=" + nodeIP,
			"--v=1",
		},
		ProxyArgs: []string{"--config=" + filepath.Join(nodeDir, "kube-proxy.yaml"), "--v=1"},
	}
	specPath := filepath.Join(nodeDir, "node.json")
	data, _ := json.MarshalIndent(spec, "", "  ")
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return nil, err
	}

	logFile, err := os.OpenFile(filepath.Join(logDir, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "node-init", specPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the node (new namespaces need root): %w", err)
	}
	n := &realNode{cmd: cmd, done: make(chan error, 1), published: map[string]string{}, cgroup: cgroup}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		if err == nil {
			err = errors.New("exited")
		}
		n.done <- fmt.Errorf("the node stopped (see %s): %w", logFile.Name(), err)
	}()
	if n.ns, err = openNetns(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)); err != nil {
		n.stop()
		return nil, err
	}
	api, err := n.ns.listen(fmt.Sprintf("0.0.0.0:%d", apiPort))
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("serving the API inside the node: %w", err)
	}
	go forward(ctx, api, hostDial, fmt.Sprintf("127.0.0.1:%d", apiPort), logger)
	for _, p := range opts.publish {
		name, target, ok := strings.Cut(p, "=")
		if !ok {
			n.stop()
			return nil, fmt.Errorf("--publish %q: want name=address", p)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			n.stop()
			return nil, err
		}
		n.published[name] = l.Addr().String()
		go forward(ctx, l, n.ns.dial, target, logger)
	}
	return n, nil
}

// stop ends the node (SIGTERM to node-init, which stops its components; SIGKILL after a grace period) and removes
// what the node left on the host.
func (n *realNode) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.done:
		n.done <- err
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		err := <-n.done
		n.done <- err
	}
	if n.ns != nil {
		n.ns.Close()
	}
	removeCgroups(n.cgroup)
}

// makeCgroups creates the node's cgroup (the kubelet's cgroupRoot) in every v1 hierarchy. The kubelet creates
// Pods' cgroups below it but expects the root to exist; cpuset's needs its parent's CPUs and memory nodes before
// anything can join it.
func makeCgroups(cgroup string) error {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil || filepath.Base(h) == "unified" {
			continue // not a v1 hierarchy (a symlink to one is visited under its own name)
		}
		if info, err := os.Lstat(h); err != nil || info.Mode()&os.ModeSymlink != 0 {
			continue
		}
		dir := h
		for _, part := range strings.Split(strings.Trim(cgroup, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("creating the node's cgroup: %w", err)
			}
			for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
				if value, err := os.ReadFile(filepath.Join(parent, file)); err == nil {
					_ = os.WriteFile(filepath.Join(dir, file), value, 0o644)
				}
			}
		}
	}
	return nil
}

// removeCgroups removes the node's cgroup tree (empty once its processes are gone) from every hierarchy.
func removeCgroups(cgroup string) {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hierarchies {
		root := filepath.Join(h, cgroup)
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // children first
			_ = unix.Rmdir(dirs[i])
		}
		_ = unix.Rmdir(filepath.Dir(root)) // /plinth, if no other cluster uses it
	}
}

func waitNodeReady(ctx context.Context, server string, certs *pki, n *realNode, timeout time.Duration) error {
	client, err := kubernetes.NewForConfig(&rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{CAData: certs.caPEM, CertData: certs.adminPEM, KeyData: certs.adminKP},
		UserAgent:       "localkube",
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	last := "not registered"
	for time.Now().Before(deadline) {
		if node, err := client.CoreV1().Nodes().Get(ctx, realNodeName, metav1.GetOptions{}); err == nil {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionTrue {
						return nil
					}
					last = fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-n.done:
			n.done <- err
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("node %s not Ready within %s: %s", realNodeName, timeout, last)
}

func containerdConfig(nodeDir, socket string, opts realNodeOptions) string {
	return fmt.Sprintf(`# containerd for the local real node (written by localkube up --real-node).
version = 3
root = %[1]q
state = %[2]q
# Plugins that write outside root/state or need what this node lacks.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[plugins."io.containerd.cri.v1.runtime"]
  # The kubelet asks for oom_score_adj -998 and this sandbox lacks CAP_SYS_RESOURCE: without this every sandbox
  # fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = %[8]q
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = %[4]q
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[5]q]
    conf_dir = %[6]q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[7]q

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "10010"
`, filepath.Join(nodeDir, "containerd", "root"), filepath.Join(nodeDir, "containerd", "state"), socket,
		opts.runc, opts.cniBin, filepath.Join(nodeDir, "cni", "net.d"), opts.sandboxImage, opts.shim)
}

func cniConfig(nodeDir string) string {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "plinth",
		"plugins": []map[string]any{
			{
				"type": "bridge", "bridge": "plinth0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": podCIDR, "gateway": podGateway}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(nodeDir, "cni", "ipam"),
				},
			},
			{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, _ := json.MarshalIndent(conf, "", "  ")
	return string(data)
}

func kubeletConfig(nodeDir, socket, caFile, cgroup string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 (this sandbox's) is refused from 1.35 unless allowed; no systemd, no QoS hierarchy, no node allocatable
# enforcement: the node shares a machine with everything else.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
cgroupRoot: %[4]q
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
protectKernelDefaults: false
containerRuntimeEndpoint: unix://%[2]s
readOnlyPort: 0
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[3]q}
authorization:
  mode: Webhook
clusterDNS: [%[5]q]
clusterDomain: cluster.local
resolvConf: %[1]s/resolv.conf
volumePluginDir: %[1]s/volume-plugins
# Images cannot be pulled again (no registry is reachable): never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
evictionHard:
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
serializeImagePulls: false
rotateCertificates: false
kubeAPIQPS: 50
kubeAPIBurst: 100
maxPods: 110
shutdownGracePeriod: 0s
`, nodeDir, socket, caFile, cgroup, clusterDNS)
}

func kubeProxyConfig(nodeDir string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]s/kube-proxy.kubeconfig
mode: nftables
clusterCIDR: %[2]s
hostnameOverride: %[3]s
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# The node's conntrack table is its network namespace's; its size is the host's to set.
conntrack:
  maxPerCore: 0
`, nodeDir, clusterCIDR, realNodeName)
}

// runNodeInit is PID 1 of the node (see the file comment); it returns the exit code.
func runNodeInit(args []string) int {
	logger := log.New(os.Stderr, "node-init ", log.LstdFlags|log.Lmicroseconds)
	if len(args) != 1 {
		logger.Print("usage: localkube node-init SPEC.json")
		return 2
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		logger.Print(err)
		return 1
	}
	var spec nodeSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		logger.Print(err)
		return 1
	}
	if err := prepareNode(spec); err != nil {
		logger.Printf("preparing the node: %v", err)
		return 1
	}
	return superviseNode(spec, logger)
}

// prepareNode makes the node's mounts private and sets up its network (see the file comment).
func prepareNode(spec nodeSpec) error {
	// Mounts made in the node never propagate to the host; the host's still reach the node.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc for the node's PID namespace: %w", err)
	}
	for _, dir := range []string{"/run", "/var/lib/cni", "/var/log"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mounting a private %s: %w", dir, err)
		}
	}
	resolv := filepath.Join(spec.Dir, "resolv.conf")
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("hiding the host's resolver: %w", err)
	}
	if err := unix.Sethostname([]byte(spec.Name)); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		// A veth pair whose both ends stay in the node (this kernel has no dummy interfaces): an interface with a
		// carrier for the node's address, leading nowhere.
		{"link", "add", "node0", "type", "veth", "peer", "name", "node0-end"},
		{"addr", "add", spec.IP + "/32", "dev", "node0"},
		{"link", "set", "node0-end", "up"},
		{"link", "set", "node0", "up"},
		// Components look for a default route to find the node's address; this one leads nowhere.
		{"route", "add", "default", "dev", "node0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for key, value := range map[string]string{
		"net/ipv4/ip_forward":                 "1",
		"net/bridge/bridge-nf-call-iptables":  "1",
		"net/bridge/bridge-nf-call-ip6tables": "1",
	} {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
	}
	return nil
}

// superviseNode starts containerd, imports the images, starts the kubelet and kube-proxy, and reaps every child
// until one of them exits or the node is told to stop.
func superviseNode(spec nodeSpec, logger *log.Logger) int {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	s := &nodeSupervisor{logger: logger, children: map[int]string{}, waiting: map[int]chan unix.WaitStatus{}, exited: make(chan string, 16),
		env: nodeEnv(os.Getenv("PATH") + ":/usr/sbin:/sbin"), logDir: spec.LogDir}
	go s.reap()

	if err := s.start("containerd", spec.Containerd, "--config", filepath.Join(spec.Dir, "containerd", "config.toml")); err != nil {
		logger.Print(err)
		return 1
	}
	if err := waitSocket(spec.Socket, 30*time.Second, s.exited); err != nil {
		logger.Printf("containerd: %v", err)
		s.shutdown()
		return 1
	}
	for _, image := range spec.Images {
		began := time.Now()
		out, err := s.run(spec.Ctr, "--address", spec.Socket, "--namespace", "k8s.io", "images", "import", image)
		if err != nil {
			logger.Printf("importing %s: %v: %s", image, err, out)
			s.shutdown()
			return 1
		}
		logger.Printf("imported %s in %s", image, time.Since(began).Round(time.Millisecond))
	}
	for name, args := range map[string][]string{"kubelet": spec.KubeletArgs, "kube-proxy": spec.ProxyArgs} {
		if err := s.start(name, spec.Exe, append([]string{name}, args...)...); err != nil {
			logger.Print(err)
			s.shutdown()
			return 1
		}
	}
	select {
	case <-stop:
		logger.Print("stopping")
		s.shutdown()
		return 0
	case name := <-s.exited:
		logger.Printf("%s exited: stopping the node", name)
		s.shutdown()
		return 1
	}
}

type nodeSupervisor struct {
	logger   *log.Logger
	env      []string
	logDir   string
	mu       sync.Mutex
	children map[int]string // the components it started, by PID; orphans are reaped but not reported
	waiting  map[int]chan unix.WaitStatus
	order    []*os.Process
	exited   chan string
}

// run runs a short-lived command to completion and returns its output. PID 1's reaper collects every child, so
// exec.Cmd.Wait cannot: the reaper hands this one's status back.
func (s *nodeSupervisor) run(path string, args ...string) ([]byte, error) {
	out, err := os.CreateTemp("", "node-init-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	done := make(chan unix.WaitStatus, 1)
	s.mu.Lock()
	proc, err := os.StartProcess(path, append([]string{path}, args...), &os.ProcAttr{
		Env: s.env, Files: []*os.File{nil, out, out},
	})
	if err == nil {
		s.waiting[proc.Pid] = done
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	status := <-done
	output, _ := os.ReadFile(out.Name())
	if !status.Exited() || status.ExitStatus() != 0 {
		return output, errors.New(describeExit(status))
	}
	return output, nil
}

func (s *nodeSupervisor) start(name, path string, args ...string) error {
	logFile, err := os.OpenFile(filepath.Join(s.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	proc, err := os.StartProcess(path, append([]string{path}, args...), &os.ProcAttr{
		Env: s.env, Files: []*os.File{nil, logFile, logFile},
	})
	if err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	s.children[proc.Pid] = name
	s.order = append(s.order, proc)
	s.logger.Printf("started %s (pid %d)", name, proc.Pid)
	return nil
}

// shutdown stops the components in reverse start order and waits (briefly) for them; whatever is left, the
// kernel kills when PID 1 exits.
func (s *nodeSupervisor) shutdown() {
	s.mu.Lock()
	order := append([]*os.Process(nil), s.order...)
	s.mu.Unlock()
	deadline := time.After(5 * time.Second)
	for i := len(order) - 1; i >= 0; i-- {
		_ = order[i].Signal(syscall.SIGTERM)
	}
	for {
		s.mu.Lock()
		left := len(s.children)
		s.mu.Unlock()
		if left == 0 {
			return
		}
		select {
		case <-s.exited:
		case <-deadline:
			return
		}
	}
}

// reap waits for every child of PID 1 (its own and orphans re-parented to it) and reports the ones it started.
func (s *nodeSupervisor) reap() {
	for {
		var status unix.WaitStatus
		pid, err := unix.Wait4(-1, &status, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: nothing to wait for yet
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		name, ok := s.children[pid]
		delete(s.children, pid)
		if done, waited := s.waiting[pid]; waited {
			delete(s.waiting, pid)
			done <- status
		}
		s.mu.Unlock()
		if ok {
			s.logger.Printf("%s (pid %d) exited: %s", name, pid, describeExit(status))
			s.exited <- name
		}
	}
}

func describeExit(s unix.WaitStatus) string {
	if s.Signaled() {
		return "signal " + s.Signal().String()
	}
	return "status " + strconv.Itoa(s.ExitStatus())
}

// nodeEnv is the components' environment: the supervisor's, with PATH replaced (a child reads the first PATH).
func nodeEnv(path string) []string {
	env := []string{"PATH=" + path}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return env
}

func waitSocket(path string, timeout time.Duration, exited <-chan string) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("unix", path); err == nil {
			conn.Close()
			return nil
		}
		select {
		case name := <-exited:
			return fmt.Errorf("%s exited while starting", name)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("no socket at %s within %s", path, timeout)
}
