package main

// The Kubernetes components run as child processes of the same binary (multi-call), each through upstream's own
// cobra command and cli.Run. Separate processes keep the global feature-gate registry, logging setup and signal
// handlers of each component apart (running them in one process panics on the second signal handler), at the cost
// of a little memory.

import (
	"context"
	_ "time/tzdata" // CronJob time zones, as upstream's mains do

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// components maps a multi-call name to the upstream command that implements it.
var components = map[string]func() *cobra.Command{
	"kube-apiserver":          func() *cobra.Command { return apiserver.NewAPIServerCommand() },
	"kube-controller-manager": func() *cobra.Command { return controllermanager.NewControllerManagerCommand() },
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	// The real node's components (`up --real-nodes`), run by `node-init` inside the node's namespaces.
	"kubelet":    func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"kube-proxy": func() *cobra.Command { return proxy.NewProxyCommand() },
}

// runComponent runs one upstream component with the given arguments and returns its exit code.
func runComponent(name string, args []string) int {
	cmd := components[name]()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}
