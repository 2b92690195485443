package node

import (
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// NodePortsNameLoopback reports whether --nodeport-addresses names a loopback range
// of the family explicitly ("localhost", 127.0.0.0/8, ::1/128, any CIDR whose network
// address is loopback), as opposed to a range that merely holds loopback (0.0.0.0/0):
// kube-proxy's NodePortAddresses.ContainsExplicitLoopback, which decides whether its
// nftables mode runs the userspace proxy for TCP node ports on loopback
// (KubeProxyNFTablesLocalhostNodePorts). "primary" never names loopback (a loopback
// primary address is skipped).
func NodePortsNameLoopback(addrs []string, family v1.IPFamily) bool {
	for _, p := range nodePortCIDRs(addrs, Facts{}) {
		if endpoints.FamilyOf(p.Addr()) == family && p.Masked().Addr().IsLoopback() {
			return true
		}
	}
	return false
}
