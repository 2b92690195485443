package conntrack

import (
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// IP plan: service 172.30.0.10:53/UDP (node port 30053 on node 192.168.0.2), endpoints
// 10.180.0.1:53 and 10.180.0.2:53; a TCP service 172.30.0.11:80.

var (
	dnsName = endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "dns"}, Port: "dns", Protocol: v1.ProtocolUDP}
	webName = endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "web"}, Port: "http", Protocol: v1.ProtocolTCP}
	nodeIP  = netip.MustParseAddr("192.168.0.2")
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func snapshot(gen uint64, changed []endpoints.ServicePortName, dnsEndpoints ...string) *endpoints.Snapshot {
	s := &endpoints.Snapshot{
		Services: map[endpoints.ServicePortName]*endpoints.ServicePort{
			webName: {Name: webName, Port: 80, ClusterIPs: []netip.Addr{netip.MustParseAddr("172.30.0.11")}},
		},
		Endpoints:  map[endpoints.ServicePortName][]*endpoints.Endpoint{},
		Changed:    map[endpoints.ServicePortName]struct{}{},
		Generation: gen,
	}
	if dnsEndpoints != nil {
		s.Services[dnsName] = &endpoints.ServicePort{Name: dnsName, Port: 53, NodePort: 30053, ClusterIPs: []netip.Addr{netip.MustParseAddr("172.30.0.10")}}
		for _, e := range dnsEndpoints {
			a := ap(e)
			s.Endpoints[dnsName] = append(s.Endpoints[dnsName], &endpoints.Endpoint{IP: a.Addr(), Port: int32(a.Port()), Ready: true, Serving: true})
		}
	}
	for _, n := range changed {
		s.Changed[n] = struct{}{}
	}
	return s
}

func TestStaleUDP(t *testing.T) {
	prev := snapshot(1, nil, "10.180.0.1:53", "10.180.0.2:53")
	tests := []struct {
		name string
		next *endpoints.Snapshot
		prev *endpoints.Snapshot
		flow Flow
		want bool
	}{
		{
			name: "flow to a removed endpoint is stale",
			prev: prev, next: snapshot(2, []endpoints.ServicePortName{dnsName}, "10.180.0.2:53"),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.1:53")},
			want: true,
		},
		{
			name: "flow to a remaining endpoint survives",
			prev: prev, next: snapshot(2, []endpoints.ServicePortName{dnsName}, "10.180.0.2:53"),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.2:53")},
			want: false,
		},
		{
			name: "node-port flow to a removed endpoint is stale",
			prev: prev, next: snapshot(2, []endpoints.ServicePortName{dnsName}, "10.180.0.2:53"),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("192.168.0.2:30053"), ReplySrc: ap("10.180.0.1:53")},
			want: true,
		},
		{
			name: "service scaled to zero: every flow to it is stale",
			prev: prev, next: snapshot(2, []endpoints.ServicePortName{dnsName}),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.2:53")},
			want: true,
		},
		{
			name: "untranslated flow (sent while the service had no endpoints) is stale once endpoints exist",
			prev: snapshot(1, nil, []string{}...), next: snapshot(2, []endpoints.ServicePortName{dnsName}, "10.180.0.2:53"),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("172.30.0.10:53")},
			want: true,
		},
		{
			name: "unchanged service is not touched by a partial cleanup",
			prev: prev, next: snapshot(2, []endpoints.ServicePortName{webName}, "10.180.0.2:53"),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.1:53")},
			want: false,
		},
		{
			name: "at start, every UDP service is checked, and live flows survive",
			next: snapshot(1, nil, "10.180.0.1:53"),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.1:53")},
			want: false,
		},
		{
			name: "TCP flows are never touched",
			prev: prev, next: snapshot(2, []endpoints.ServicePortName{webName}),
			flow: Flow{Protocol: v1.ProtocolTCP, OrigDst: ap("172.30.0.11:80"), ReplySrc: ap("10.180.9.9:80")},
			want: false,
		},
		{
			name: "flows to other destinations are never touched",
			prev: prev, next: snapshot(2, []endpoints.ServicePortName{dnsName}),
			flow: Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("8.8.8.8:53"), ReplySrc: ap("8.8.8.8:53")},
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewStaleUDP(tt.prev, tt.next, []netip.Addr{nodeIP})
			if got := f.Match(tt.flow); got != tt.want {
				t.Errorf("Match(%+v) = %v, want %v", tt.flow, got, tt.want)
			}
		})
	}
}

func TestStaleUDPEmptyWithoutUDPChanges(t *testing.T) {
	prev := snapshot(1, nil, "10.180.0.1:53")
	next := snapshot(2, []endpoints.ServicePortName{webName}, "10.180.0.1:53")
	if f := NewStaleUDP(prev, next, []netip.Addr{nodeIP}); !f.Empty() {
		t.Errorf("a sync that changed only TCP services must not read the conntrack table")
	}
}
