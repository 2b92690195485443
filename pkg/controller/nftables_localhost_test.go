package controller

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/node"
)

// TestNFTablesLocalhostNodePortRejects checks which protocols nftables mode rejects on
// loopback node ports, per family, as kube-proxy v1.37.2 decides in NewProxier: none
// with the gate off; tcp, udp and sctp with it on; udp and sctp when
// --nodeport-addresses names the family's loopback range (kube-proxy then proxies TCP).
//
// mutation-checked: asking NodePortsNameLoopback about IPv4 for both families fails
// "127.0.0.0/8 names IPv4 loopback only".
func TestNFTablesLocalhostNodePortRejects(t *testing.T) {
	facts := node.Facts{IPs: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}}
	all, notTCP := []string{"tcp", "udp", "sctp"}, []string{"udp", "sctp"}
	for _, tc := range []struct {
		name  string
		gate  bool
		addrs []string
		want  map[v1.IPFamily][]string
	}{
		{"gate off", false, []string{"localhost"}, map[v1.IPFamily][]string{}},
		{"gate on", true, nil, map[v1.IPFamily][]string{v1.IPv4Protocol: all, v1.IPv6Protocol: all}},
		{"localhost keyword: both families", true, []string{"primary", "localhost"}, map[v1.IPFamily][]string{v1.IPv4Protocol: notTCP, v1.IPv6Protocol: notTCP}},
		{"127.0.0.0/8 names IPv4 loopback only", true, []string{"192.0.2.0/24", "127.0.0.0/8"}, map[v1.IPFamily][]string{v1.IPv4Protocol: notTCP, v1.IPv6Protocol: all}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Mode, cfg.NFTablesLocalhostNodePorts, cfg.NodePortAddresses = "nftables", tc.gate, tc.addrs
			got := map[v1.IPFamily][]string{}
			for _, c := range nftablesConfigs(&cfg, facts) {
				if len(c.LocalhostNodePortRejects) > 0 {
					got[c.Family] = c.LocalhostNodePortRejects
				}
				if err := c.Validate(); err != nil {
					t.Error(err)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rejected protocols by family (-want +got):\n%s", diff)
			}
		})
	}
}
