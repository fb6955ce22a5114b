// Command pause is the Pod sandbox's process for Plinth's real nodes: it holds the Pod's namespaces open and, as
// PID 1 of a shared PID namespace, reaps the zombies it inherits. It exits 0 on SIGINT or SIGTERM.
//
// It is ours rather than upstream's because no registry is reachable: the image is built locally
// (operator/devimages.py) and loaded into containerd.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap collects every exited child: signals coalesce, so one SIGCHLD may stand for several exits.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
