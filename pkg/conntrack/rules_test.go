package conntrack

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// IP plan (as conntrack_test.go): the UDP service ns/dns, 172.30.0.10:53 and
// fd00:30::10:53, node port 30053 on nodes 192.168.0.2 and 192.168.1.2 (and
// fd00:1::2), external IP 203.0.113.10, load-balancer VIP 198.51.100.10; endpoints in
// 10.180.0.0/16 and fd00:180::/64.

// dnsPort builds the dns service port; tweak changes it.
func dnsPort(tweak func(*endpoints.ServicePort)) *endpoints.ServicePort {
	p := &endpoints.ServicePort{Name: dnsName, Port: 53, ClusterIPs: []netip.Addr{netip.MustParseAddr("172.30.0.10")}}
	if tweak != nil {
		tweak(p)
	}
	return p
}

// dnsEndpoint builds an endpoint of the dns service; tweak changes it.
func dnsEndpoint(addr string, tweak func(*endpoints.Endpoint)) *endpoints.Endpoint {
	a := ap(addr)
	e := &endpoints.Endpoint{IP: a.Addr(), Port: int32(a.Port()), Ready: true, Serving: true}
	if tweak != nil {
		tweak(e)
	}
	return e
}

// snap builds a snapshot of generation gen holding the dns port (if not nil) with eps,
// in which dns changed.
func snap(gen uint64, port *endpoints.ServicePort, eps ...*endpoints.Endpoint) *endpoints.Snapshot {
	s := &endpoints.Snapshot{
		Services:   map[endpoints.ServicePortName]*endpoints.ServicePort{},
		Endpoints:  map[endpoints.ServicePortName][]*endpoints.Endpoint{},
		Changed:    map[endpoints.ServicePortName]struct{}{dnsName: {}},
		Generation: gen,
	}
	if port != nil {
		s.Services[dnsName] = port
		s.Endpoints[dnsName] = eps
	}
	return s
}

func udp(dst, replySrc string) Flow {
	return Flow{Protocol: v1.ProtocolUDP, OrigDst: ap(dst), ReplySrc: ap(replySrc)}
}

// TestStaleUDPRules checks kube-proxy v1.37's rules for which UDP entries are stale
// (pkg/proxy/conntrack/cleanup.go): an entry to a service frontend (cluster IP,
// external IP, load-balancer VIP, node port) whose reply source is not a serving
// endpoint — serving counts terminating endpoints that still serve, so a rollout
// does not cut their flows — plus, beyond kube-proxy, the frontends of deleted
// services (kube-proxy forgets them, and their flows keep going to the old pod).
func TestStaleUDPRules(t *testing.T) {
	nodeIPs := []netip.Addr{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("fd00:1::2")}
	both := snap(1, dnsPort(nil), dnsEndpoint("10.180.0.1:53", nil), dnsEndpoint("10.180.0.2:53", nil))
	tests := []struct {
		name       string
		prev, next *endpoints.Snapshot
		flow       Flow
		want       bool
	}{
		{
			// mutation-checked: counting only Ready endpoints (ep.Ready instead of
			// ep.Ready || ep.Serving) fails this.
			name: "a terminating endpoint that still serves keeps its flows",
			prev: both,
			next: snap(2, dnsPort(nil), dnsEndpoint("10.180.0.1:53", func(e *endpoints.Endpoint) { e.Ready, e.Terminating = false, true })),
			flow: udp("172.30.0.10:53", "10.180.0.1:53"),
			want: false,
		},
		{
			// mutation-checked: allowing every listed endpoint whatever its
			// conditions fails this.
			name: "an endpoint that no longer serves loses its flows",
			prev: both,
			next: snap(2, dnsPort(nil), dnsEndpoint("10.180.0.1:53", func(e *endpoints.Endpoint) { e.Ready, e.Serving, e.Terminating = false, false, true })),
			flow: udp("172.30.0.10:53", "10.180.0.1:53"),
			want: true,
		},
		{
			// mutation-checked: leaving ExternalIPs out of frontends fails this.
			name: "external IP frontend",
			prev: snap(1, dnsPort(func(p *endpoints.ServicePort) { p.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.10")} }), dnsEndpoint("10.180.0.1:53", nil)),
			next: snap(2, dnsPort(func(p *endpoints.ServicePort) { p.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.10")} }), dnsEndpoint("10.180.0.2:53", nil)),
			flow: udp("203.0.113.10:53", "10.180.0.1:53"),
			want: true,
		},
		{
			// mutation-checked: leaving LoadBalancerVIPs out of frontends fails this.
			name: "load-balancer VIP frontend",
			prev: snap(1, dnsPort(func(p *endpoints.ServicePort) {
				p.LoadBalancerVIPs = []netip.Addr{netip.MustParseAddr("198.51.100.10")}
			}), dnsEndpoint("10.180.0.1:53", nil)),
			next: snap(2, dnsPort(func(p *endpoints.ServicePort) {
				p.LoadBalancerVIPs = []netip.Addr{netip.MustParseAddr("198.51.100.10")}
			}), dnsEndpoint("10.180.0.2:53", nil)),
			flow: udp("198.51.100.10:53", "10.180.0.1:53"),
			want: true,
		},
		{
			name: "node port on the node's second address",
			prev: snap(1, dnsPort(func(p *endpoints.ServicePort) { p.NodePort = 30053 }), dnsEndpoint("10.180.0.1:53", nil)),
			next: snap(2, dnsPort(func(p *endpoints.ServicePort) { p.NodePort = 30053 }), dnsEndpoint("10.180.0.2:53", nil)),
			flow: udp("192.168.1.2:30053", "10.180.0.1:53"),
			want: true,
		},
		{
			// kube-proxy matches node ports on any destination address; Switchyard
			// only on the node's, so another host's port 30053 is never touched.
			name: "the same port on another host is not a node port",
			prev: snap(1, dnsPort(func(p *endpoints.ServicePort) { p.NodePort = 30053 }), dnsEndpoint("10.180.0.1:53", nil)),
			next: snap(2, dnsPort(func(p *endpoints.ServicePort) { p.NodePort = 30053 }), dnsEndpoint("10.180.0.2:53", nil)),
			flow: udp("192.0.2.7:30053", "192.0.2.7:30053"),
			want: false,
		},
		{
			// mutation-checked: not adding prev's frontends (the `add(port, nil)` of
			// the previous snapshot) fails this.
			name: "a deleted service's flows are stale",
			prev: both,
			next: snap(2, nil),
			flow: udp("172.30.0.10:53", "10.180.0.2:53"),
			want: true,
		},
		{
			// mutation-checked: replacing instead of merging a frontend's allowed
			// endpoints fails TestStaleUDP/flow_to_a_remaining_endpoint_survives
			// every run, and this case in the runs (3 of 10) where map order puts
			// the old port second.
			name: "a frontend taken over by the new port keeps the new port's flows",
			prev: snap(1, dnsPort(func(p *endpoints.ServicePort) { p.Port = 53 }), dnsEndpoint("10.180.0.1:53", nil)),
			next: func() *endpoints.Snapshot {
				s := snap(2, dnsPort(nil), dnsEndpoint("10.180.0.2:53", nil))
				// The same frontend now served by another service port.
				other := dnsName
				other.Port = "dns-tcp-too"
				s.Services[other] = dnsPort(func(p *endpoints.ServicePort) { p.Name = other })
				s.Endpoints[other] = []*endpoints.Endpoint{dnsEndpoint("10.180.0.3:53", nil)}
				s.Changed[other] = struct{}{}
				delete(s.Services, dnsName)
				return s
			}(),
			flow: udp("172.30.0.10:53", "10.180.0.3:53"),
			want: false,
		},
		{
			// mutation-checked: dropping the protocol check in Match fails this.
			name: "an SCTP flow to the frontend's address and port is not touched",
			prev: both,
			next: snap(2, dnsPort(nil)),
			flow: Flow{Protocol: v1.ProtocolSCTP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.1:53")},
			want: false,
		},
		{
			name: "IPv6 flow to a removed endpoint",
			prev: snap(1, dnsPort(func(p *endpoints.ServicePort) { p.ClusterIPs = []netip.Addr{netip.MustParseAddr("fd00:30::10")} }), dnsEndpoint("[fd00:180::1]:53", nil), dnsEndpoint("[fd00:180::2]:53", nil)),
			next: snap(2, dnsPort(func(p *endpoints.ServicePort) { p.ClusterIPs = []netip.Addr{netip.MustParseAddr("fd00:30::10")} }), dnsEndpoint("[fd00:180::2]:53", nil)),
			flow: udp("[fd00:30::10]:53", "[fd00:180::1]:53"),
			want: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewStaleUDP(tt.prev, tt.next, nodeIPs)
			if got := f.Match(tt.flow); got != tt.want {
				t.Errorf("Match(%+v) = %v, want %v", tt.flow, got, tt.want)
			}
		})
	}
}

// TestFrontends checks what a cleanup asks the kernel for: each family's frontends of
// the changed UDP ports, sorted, and nothing for a family without any.
func TestFrontends(t *testing.T) {
	port := dnsPort(func(p *endpoints.ServicePort) {
		p.ClusterIPs = []netip.Addr{netip.MustParseAddr("172.30.0.10"), netip.MustParseAddr("fd00:30::10")}
		p.NodePort = 30053
	})
	f := NewStaleUDP(snap(1, port, dnsEndpoint("10.180.0.1:53", nil)), snap(2, port), []netip.Addr{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("fd00:1::2")})
	want := map[v1.IPFamily][]netip.AddrPort{
		v1.IPv4Protocol: {ap("172.30.0.10:53"), ap("192.168.0.2:30053")},
		v1.IPv6Protocol: {ap("[fd00:1::2]:30053"), ap("[fd00:30::10]:53")},
	}
	for family, w := range want {
		if diff := cmp.Diff(w, f.Frontends(family), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("Frontends(%s) (-want +got):\n%s", family, diff)
		}
	}
	if got := NewStaleUDP(snap(1, nil), snap(2, nil), nil).Frontends(v1.IPv4Protocol); len(got) != 0 {
		t.Errorf("Frontends without any UDP port = %v", got)
	}
}

// TestDumps checks how a cleanup groups frontends into kernel walks: one per service
// address and port, one per node port whatever the node address.
// mutation-checked: not grouping node ports (Addr kept) fails this.
func TestDumps(t *testing.T) {
	port := dnsPort(func(p *endpoints.ServicePort) {
		p.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.10")}
		p.NodePort = 30053
	})
	nodeIPs := []netip.Addr{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.1.2")}
	f := NewStaleUDP(snap(1, port, dnsEndpoint("10.180.0.1:53", nil)), snap(2, port), nodeIPs)
	var got []string
	for _, d := range f.Dumps(v1.IPv4Protocol) {
		got = append(got, d.String())
	}
	if diff := cmp.Diff([]string{"172.30.0.10:53", "*:30053", "203.0.113.10:53"}, got); diff != "" {
		t.Errorf("Dumps (-want +got):\n%s", diff)
	}
}
