// localkube is a Docker-free local Kubernetes control plane for developing and testing Plinth: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and simulated nodes, built from the upstream Go modules.
//
//	localkube up --dir DIR [--nodes N]     run a whole cluster until SIGINT/SIGTERM
//	localkube version                      print the Kubernetes version it embeds
//	localkube kube-apiserver|kube-controller-manager|kube-scheduler ARGS...   (used by `up` for its children)
package main

import (
	"fmt"
	"os"
)

// kubeVersion is set at link time (-X main.kubeVersion=...) together with component-base's version variables.
var kubeVersion = "v0.0.0-dev"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch name := os.Args[1]; name {
	case "up":
		os.Exit(runUp(os.Args[2:]))
	case "node-init":
		os.Exit(runNodeInit(os.Args[2:]))
	case "version":
		fmt.Println(kubeVersion)
	default:
		if _, ok := components[name]; !ok {
			usage()
		}
		os.Exit(runComponent(name, os.Args[2:]))
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: localkube up --dir DIR [--nodes N] | version | kube-apiserver|kube-controller-manager|kube-scheduler ARGS...")
	os.Exit(2)
}
