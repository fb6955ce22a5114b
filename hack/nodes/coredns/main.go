// Command coredns is CoreDNS with the plugins the real node's Corefile uses (hack/nodes/addons/coredns.yaml):
// the cluster's names only, nothing forwarded (no resolver outside the node is reachable). Upstream's main imports
// every plugin, which makes the build several times longer.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver" // the DNS server type
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
