package nftables

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// Outcome prefixes as nftmodel prints them.
const (
	half    = "ACCEPT p=0.5000 endpoint="
	certain = "ACCEPT p=1.0000 endpoint="
	drop    = "DROP p=1.0000"
	reject  = "REJECT p=1.0000"
)

// Clients of the packet-path cases (see the IP plan in builders_test.go).
var (
	podClient     = client{src: "10.180.0.99", origin: nftmodel.FromPodOrExternal}
	outsideClient = client{src: "198.51.100.7", origin: nftmodel.FromPodOrExternal}
	nodeClient    = client{src: testNodeIP, origin: nftmodel.FromLocalProcess}
	pod6Client    = client{src: "fd00:10::99", origin: nftmodel.FromPodOrExternal}
	outside6      = client{src: "2001:db8:9::7", origin: nftmodel.FromPodOrExternal}
)

type client struct {
	src    string
	origin nftmodel.Origin
}

// lbService makes a LoadBalancer Service with node port 30001 and ingress 203.0.113.20.
func lbService(tweaks ...func(*v1.Service)) *v1.Service {
	return makeService("ns", "lb", "172.30.0.20", append([]func(*v1.Service){func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeLoadBalancer, 30001
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.20"}}
	}}, tweaks...)...)
}

func eTPLocal(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal }

// v6Slice turns a slice's addresses into IPv6 ones.
func v6Slice(s *discovery.EndpointSlice) *discovery.EndpointSlice {
	s.AddressType = discovery.AddressTypeIPv6
	return s
}

// TestPacketPaths renders each case in full into a knftables.Fake and traces one
// packet through the dump with nftmodel (a strict model of nftables, checked against
// kube-proxy's real tables and real connections by test/nftables): where it can go,
// with which probability, and whether it is masqueraded. Endpoint selection is
// pkg/endpoints' (as iptables mode): terminating fallback, topology, policies.
//
// mutation-checked: sending Local-policy external traffic to the cluster chain (in
// decide) fails "eTP Local node port from outside"; dropping the short-circuit rule
// fails "eTP Local, pod short-circuits"; leaving loadBalancerSourceRanges out of
// firewall-ips fails "LB source range, other source"; swapping the no-endpoint verdicts
// (drop for reject) fails "no endpoints".
func TestPacketPaths(t *testing.T) {
	web := makeService("ns", "web", "172.30.0.10")
	web2 := makeSlice("ns", "web", "web-1", 8080, ep{IP: "10.180.0.1", Node: testNode}, ep{IP: "10.180.1.1", Node: otherNode})
	remoteOnly := makeSlice("ns", "lb", "lb-1", 8080, ep{IP: "10.180.1.2", Node: otherNode})
	both := makeSlice("ns", "lb", "lb-1", 8080, ep{IP: "10.180.0.2", Node: testNode}, ep{IP: "10.180.1.2", Node: otherNode})
	tests := []struct {
		name     string
		cfg      func(*Config)
		objects  []any
		from     client
		proto    string
		dst      string
		affinity string
		want     []string
	}{
		{name: "cluster IP from a pod", objects: []any{web, web2}, from: podClient, dst: "172.30.0.10:80",
			want: []string{half + "10.180.0.1:8080", half + "10.180.1.1:8080"}},
		{name: "cluster IP from outside is masqueraded", objects: []any{web, web2}, from: outsideClient, dst: "172.30.0.10:80",
			want: []string{half + "10.180.0.1:8080 masquerade", half + "10.180.1.1:8080 masquerade"}},
		{name: "cluster IP from the node is masqueraded", objects: []any{web, web2}, from: nodeClient, dst: "172.30.0.10:80",
			want: []string{half + "10.180.0.1:8080 masquerade", half + "10.180.1.1:8080 masquerade"}},
		{name: "masquerade-all", cfg: func(c *Config) { c.MasqueradeAll = true }, objects: []any{web, web2}, from: podClient, dst: "172.30.0.10:80",
			want: []string{half + "10.180.0.1:8080 masquerade", half + "10.180.1.1:8080 masquerade"}},
		{name: "hairpin: a pod reaching itself is masqueraded", objects: []any{web, web2}, from: client{src: "10.180.0.1"}, dst: "172.30.0.10:80",
			want: []string{half + "10.180.0.1:8080 masquerade", half + "10.180.1.1:8080"}},
		{name: "port not served on a cluster IP", objects: []any{web, web2}, from: podClient, dst: "172.30.0.10:81", want: []string{reject}},
		{name: "unallocated cluster IP", objects: []any{web, web2}, from: podClient, dst: "172.30.9.9:80", want: []string{drop}},
		{name: "no endpoints", objects: []any{web}, from: podClient, dst: "172.30.0.10:80", want: []string{reject}},
		{name: "udp", objects: []any{makeService("ns", "dns", "172.30.0.53", func(s *v1.Service) { s.Spec.Ports[0].Protocol = v1.ProtocolUDP }),
			udpSlice(makeSlice("ns", "dns", "dns-1", 53, ep{IP: "10.180.1.53", Node: otherNode}))},
			from: podClient, proto: "udp", dst: "172.30.0.53:80", want: []string{certain + "10.180.1.53:53"}},
		{name: "sctp", objects: []any{makeService("ns", "s", "172.30.0.54", func(s *v1.Service) { s.Spec.Ports[0].Protocol = v1.ProtocolSCTP }),
			sctpSlice(makeSlice("ns", "s", "s-1", 9, ep{IP: "10.180.1.54", Node: otherNode}))},
			from: podClient, proto: "sctp", dst: "172.30.0.54:80", want: []string{certain + "10.180.1.54:9"}},
		{name: "terminating endpoints serve when none is ready", objects: []any{web, makeSlice("ns", "web", "web-1", 8080,
			ep{IP: "10.180.0.1", Node: testNode, NotReady: true, Terminating: true}, ep{IP: "10.180.1.1", Node: otherNode, NotReady: true})},
			from: podClient, dst: "172.30.0.10:80", want: []string{certain + "10.180.0.1:8080"}},
		{name: "ready endpoints win over terminating ones", objects: []any{web, makeSlice("ns", "web", "web-1", 8080,
			ep{IP: "10.180.0.1", Node: testNode, NotReady: true, Terminating: true}, ep{IP: "10.180.1.1", Node: otherNode})},
			from: podClient, dst: "172.30.0.10:80", want: []string{certain + "10.180.1.1:8080"}},
		{name: "zone hints narrow to this node's zone", objects: []any{web, makeSlice("ns", "web", "web-1", 8080,
			ep{IP: "10.180.0.1", Node: testNode, ZoneHints: []string{testZone}}, ep{IP: "10.180.1.1", Node: otherNode, ZoneHints: []string{"zone-b"}})},
			from: podClient, dst: "172.30.0.10:80", want: []string{certain + "10.180.0.1:8080"}},
		{name: "iTP Local, no local endpoint", objects: []any{makeService("ns", "web", "172.30.0.10", itpLocal), web2Remote()},
			from: podClient, dst: "172.30.0.10:80", want: []string{drop}},
		{name: "iTP Local, local endpoint", objects: []any{makeService("ns", "web", "172.30.0.10", itpLocal), web2},
			from: podClient, dst: "172.30.0.10:80", want: []string{certain + "10.180.0.1:8080"}},
		{name: "node port from outside is masqueraded", objects: []any{lbService(), both}, from: outsideClient, dst: testNodeIP + ":30001",
			want: []string{half + "10.180.0.2:8080 masquerade", half + "10.180.1.2:8080 masquerade"}},
		{name: "node port on an address outside --nodeport-addresses", objects: []any{lbService(), both}, from: outsideClient, dst: "192.168.0.9:30001",
			want: []string{"ACCEPT p=1.0000 local"}},
		{name: "node port on any local address without --nodeport-addresses", cfg: allNodePorts, objects: []any{lbService(), both},
			from: outsideClient, dst: testNodeIP + ":30001", want: []string{half + "10.180.0.2:8080 masquerade", half + "10.180.1.2:8080 masquerade"}},
		{name: "no node port on localhost", cfg: allNodePorts, objects: []any{lbService(), both}, from: nodeClient, dst: "127.0.0.1:30001",
			want: []string{"ACCEPT p=1.0000 local"}},
		{name: "eTP Local node port from outside", objects: []any{lbService(eTPLocal), both}, from: outsideClient, dst: testNodeIP + ":30001",
			want: []string{certain + "10.180.0.2:8080"}},
		{name: "eTP Local, no local endpoint, from outside", objects: []any{lbService(eTPLocal), remoteOnly}, from: outsideClient, dst: testNodeIP + ":30001",
			want: []string{"DROP p=1.0000 local"}},
		{name: "eTP Local, pod short-circuits", objects: []any{lbService(eTPLocal), remoteOnly}, from: podClient, dst: "203.0.113.20:80",
			want: []string{certain + "10.180.1.2:8080"}},
		{name: "eTP Local, node short-circuits, masqueraded", objects: []any{lbService(eTPLocal), remoteOnly}, from: nodeClient, dst: testNodeIP + ":30001",
			want: []string{certain + "10.180.1.2:8080 masquerade"}},
		{name: "LB source range, allowed source", objects: []any{lbService(sourceRange), both}, from: outsideClient, dst: "203.0.113.20:80",
			want: []string{half + "10.180.0.2:8080 masquerade", half + "10.180.1.2:8080 masquerade"}},
		{name: "LB source range, other source", objects: []any{lbService(sourceRange), both}, from: client{src: "198.51.100.99"}, dst: "203.0.113.20:80",
			want: []string{drop}},
		{name: "LB source range does not apply to node ports", objects: []any{lbService(sourceRange), both}, from: client{src: "198.51.100.99"}, dst: testNodeIP + ":30001",
			want: []string{half + "10.180.0.2:8080 masquerade", half + "10.180.1.2:8080 masquerade"}},
		{name: "external IP from outside", objects: []any{makeService("ns", "web", "172.30.0.10", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.10"} }), web2},
			from: outsideClient, dst: "203.0.113.10:80", want: []string{half + "10.180.0.1:8080 masquerade", half + "10.180.1.1:8080 masquerade"}},
		{name: "affinity hit", objects: []any{makeService("ns", "web", "172.30.0.10", clientIP), web2}, from: podClient, dst: "172.30.0.10:80",
			affinity: "affinity-GQ7NNMVW-ns/web/tcp/p80__10.180.1.1/8080",
			want:     []string{certain + "10.180.1.1:8080 affinity=affinity-GQ7NNMVW-ns/web/tcp/p80__10.180.1.1/8080"}},
		{name: "IPv6 cluster IP", cfg: toV6, objects: []any{makeService("ns", "web", "fd00:30::10"), v6Slice(makeSlice("ns", "web", "web-1", 8080,
			ep{IP: "fd00:10::1", Node: testNode}, ep{IP: "fd00:11::1", Node: otherNode}))},
			from: pod6Client, dst: "[fd00:30::10]:80", want: []string{half + "[fd00:10::1]:8080", half + "[fd00:11::1]:8080"}},
		{name: "IPv6 node port from outside", cfg: toV6, objects: []any{makeService("ns", "web", "fd00:30::10", func(s *v1.Service) {
			s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeNodePort, 30002
		}), v6Slice(makeSlice("ns", "web", "web-1", 8080, ep{IP: "fd00:11::1", Node: otherNode}))},
			from: outside6, dst: "[" + testNodeIPv6 + "]:30002", want: []string{certain + "[fd00:11::1]:8080 masquerade"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			fake := newFake(cfg)
			applyFull(t, fake, snapshotOf(t, tt.objects...), cfg, true)
			got := trace(t, fake, cfg, tt.from, tt.proto, tt.dst, tt.affinity)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

// trace parses fake's table with nftmodel and traces a new connection from c to dst.
func trace(t *testing.T, fake interface{ Dump() string }, cfg *Config, c client, proto, dst, affinity string) []string {
	t.Helper()
	rs, err := nftmodel.Parse(fake.Dump())
	if err != nil {
		t.Fatalf("nftmodel rejects the table: %v", err)
	}
	if proto == "" {
		proto = "tcp"
	}
	to := netip.MustParseAddrPort(dst)
	node := nftmodel.Node{LocalAddrs: append(slices.Clone(cfg.NodeIPs), netip.MustParseAddr("192.168.0.9"))}
	pkt := nftmodel.Packet{Proto: proto, Src: netip.MustParseAddr(c.src), Dst: to.Addr(), DstPort: int(to.Port()), SrcPort: 40000, Origin: c.origin}
	if c.origin == nftmodel.FromLocalProcess && to.Addr().IsLoopback() {
		pkt.Src = netip.MustParseAddr("127.0.0.1")
	}
	res, err := nftmodel.Trace(rs, node, pkt, nftmodel.Options{AffinityHit: affinity})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range res.Outcomes {
		out = append(out, o.String())
	}
	slices.Sort(out)
	return out
}

func itpLocal(s *v1.Service) {
	s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
}

func sourceRange(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/29"} }

func clientIP(s *v1.Service) {
	s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
}

func allNodePorts(c *Config) { c.RestrictNodePorts, c.NodePortIPs = false, nil }

func toV6(c *Config) { *c = *testConfigV6() }

func web2Remote() *discovery.EndpointSlice {
	return makeSlice("ns", "web", "web-1", 8080, ep{IP: "10.180.1.1", Node: otherNode})
}

func udpSlice(s *discovery.EndpointSlice) *discovery.EndpointSlice {
	s.Ports[0].Protocol = ptr.To(v1.ProtocolUDP)
	return s
}

func sctpSlice(s *discovery.EndpointSlice) *discovery.EndpointSlice {
	s.Ports[0].Protocol = ptr.To(v1.ProtocolSCTP)
	return s
}
