package main

// The real node lives in network namespaces of its own: nothing routes between them and the host. These are the
// only doors, all opened by the supervisor (which stays in the host's namespace):
//   - the API server's port inside the node (its loopback and node IP) forwards to the API server on the host's
//     127.0.0.1, so the kubelet, kube-proxy and every Pod (through the `kubernetes` Service) reach it;
//   - an HTTP CONNECT proxy on the host's 127.0.0.1 that the API server uses as its "cluster" egress (see
//     --egress-selector-config-file): kubectl logs/exec/port-forward and Service-backed webhooks dial the node through
//     it, as they would through konnectivity on a cloud cluster;
//   - ports published on the host's 127.0.0.1 that forward to an address inside the node (e.g. the ingress
//     controller's Service), which is how a user or a test reaches the data plane.
// A socket belongs to the network namespace of the thread that created it, so each listener or dial that must
// happen inside the node is made on a locked OS thread switched into the node's namespace for that one call.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a handle on a network namespace, kept open so the namespace outlives a restart of its first process.
type netns struct{ file *os.File }

func openNetns(path string) (*netns, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	return &netns{file: f}, nil
}

func (n *netns) Close() error { return n.file.Close() }

// do runs fn on an OS thread switched into the namespace. If switching back fails the thread stays locked, so Go
// retires it instead of reusing a thread in the wrong namespace.
func (n *netns) do(fn func() error) error {
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(n.file.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering the node's network namespace: %w", err)
	}
	fnErr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(fnErr, fmt.Errorf("leaving the node's network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

func (n *netns) listen(address string) (l net.Listener, err error) {
	err = n.do(func() error {
		l, err = net.Listen("tcp", address)
		return err
	})
	return l, err
}

func (n *netns) dial(ctx context.Context, address string) (c net.Conn, err error) {
	err = n.do(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", address)
		return err
	})
	return c, err
}

type dialFunc func(ctx context.Context, address string) (net.Conn, error)

func hostDial(ctx context.Context, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", address)
}

// serve accepts on l until ctx ends and hands every connection to handle on its own goroutine.
func serve(ctx context.Context, l net.Listener, what string, logger *log.Logger, handle func(net.Conn)) {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				logger.Printf("%s: accept: %v", what, err)
			}
			return
		}
		go handle(conn)
	}
}

// forward pipes every connection accepted on l (until ctx ends) to target, dialled with dial.
func forward(ctx context.Context, l net.Listener, dial dialFunc, target string, logger *log.Logger) {
	what := fmt.Sprintf("forward %s -> %s", l.Addr(), target)
	serve(ctx, l, what, logger, func(conn net.Conn) {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		upstream, err := dial(dctx, target)
		if err != nil {
			logger.Printf("%s: %v", what, err)
			conn.Close()
			return
		}
		pipe(conn, upstream)
	})
}

// pipe copies both ways until either side closes, then closes both.
func pipe(a, b net.Conn) {
	var once sync.Once
	closeBoth := func() { once.Do(func() { a.Close(); b.Close() }) }
	go func() { _, _ = io.Copy(a, b); closeBoth() }()
	_, _ = io.Copy(b, a)
	closeBoth()
}

// connectProxy serves HTTP CONNECT on l: the API server's egress to the cluster network. Targets on the host's
// loopback are dialled on the host; every other address is dialled inside the node's network namespace.
func connectProxy(ctx context.Context, l net.Listener, node func() *netns, logger *log.Logger) {
	serve(ctx, l, "egress proxy", logger, func(conn net.Conn) { serveConnect(ctx, conn, node, logger) })
}

func serveConnect(ctx context.Context, conn net.Conn, node func() *netns, logger *log.Logger) {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reader := bufio.NewReader(conn)
	req, err := http.ReadRequest(reader)
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if req.Method != http.MethodConnect {
		fmt.Fprint(conn, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		conn.Close()
		return
	}
	target := req.Host
	dial := hostDial
	if host, _, err := net.SplitHostPort(target); err != nil || !net.ParseIP(host).IsLoopback() {
		ns := node()
		if ns == nil {
			fmt.Fprint(conn, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
			conn.Close()
			return
		}
		dial = ns.dial
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	upstream, err := dial(dctx, target)
	if err != nil {
		logger.Printf("egress proxy: CONNECT %s: %v", target, err)
		fmt.Fprint(conn, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		conn.Close()
		return
	}
	fmt.Fprint(conn, "HTTP/1.1 200 Connection Established\r\n\r\n")
	if n := reader.Buffered(); n > 0 { // bytes the client sent right after its request line
		buffered, _ := reader.Peek(n)
		if _, err := upstream.Write(buffered); err != nil {
			conn.Close()
			upstream.Close()
			return
		}
	}
	pipe(conn, upstream)
}
