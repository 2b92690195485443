package iptables

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// Sources used by the packet-path tests (see the IP plan in builders_test.go).
const (
	podSrc      = "10.180.0.50"  // a pod on node1, inside the cluster CIDR
	outsideSrc  = "198.51.100.7" // an outside client inside the LB source range
	blockedSrc  = "192.0.2.99"   // an outside client outside the LB source range
	lbAllowed   = "198.51.100.0/24"
	nodeIPv4    = testNodeIP
	otherPodSrc = "10.180.1.50" // a pod on node2, arriving through the tunnel
)

// programmed runs a Proxier against the strict fake, as the daemon would, and returns
// the kernel's tables.
func programmed(t *testing.T, cfg *Config, objects ...any) *ruleset.Ruleset {
	t.Helper()
	family := ruleset.IPv4
	if cfg.Family == v1.IPv6Protocol {
		family = ruleset.IPv6
	}
	fake := xtablestest.NewFake(family)
	p, err := NewProxier(cfg, fake, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(context.Background(), snapshotOf(t, objects...)); err != nil {
		t.Fatalf("sync: %v", err)
	}
	return fake.Ruleset()
}

// packetCase is one row of a packet-path table: a packet, and where it may land.
type packetCase struct {
	name   string
	src    string
	dst    string
	port   int
	proto  string
	origin tracer.Origin
	// inIface is the arrival interface of a packet from a pod or outside; default
	// "eth0".
	inIface string
	// affinityHit names the endpoint whose affinity entry the client already has.
	affinityHit string
	// wantEndpoints are every endpoint the packet may reach ("ip:port").
	wantEndpoints []string
	// wantMasq lists the endpoints whose path masquerades the packet.
	wantMasq []string
	// wantVerdicts are the possible verdicts; default ACCEPT.
	wantVerdicts []tracer.Verdict
}

func runPacketCases(t *testing.T, rs *ruleset.Ruleset, node tracer.Node, cases []packetCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proto := tc.proto
			if proto == "" {
				proto = "tcp"
			}
			pkt := tracer.Packet{
				Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst),
				Proto: proto, SrcPort: 40000, DstPort: tc.port, Origin: tc.origin,
			}
			if tc.origin == tracer.FromPodOrExternal {
				pkt.InIface = "eth0"
				if tc.inIface != "" {
					pkt.InIface = tc.inIface
				}
			}
			var opts tracer.Options
			if tc.affinityHit != "" {
				opts.AffinityHit = tc.affinityHit
			}
			res, err := tracer.Trace(rs, node, pkt, opts)
			if err != nil {
				t.Fatalf("trace: %v", err)
			}
			wantVerdicts := tc.wantVerdicts
			if wantVerdicts == nil {
				wantVerdicts = []tracer.Verdict{tracer.Accept}
			}
			sortSet := cmpopts.SortSlices(func(a, b string) bool { return a < b })
			if diff := cmp.Diff(wantVerdicts, uniqueVerdicts(res)); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s\n%s", diff, res)
			}
			if diff := cmp.Diff(tc.wantEndpoints, res.Endpoints, sortSet, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s\n%s", diff, res)
			}
			var masq []string
			for _, o := range res.Outcomes {
				if o.Verdict == tracer.Accept && o.Masquerade && o.Endpoint != "" && !slices.Contains(masq, o.Endpoint) {
					masq = append(masq, o.Endpoint)
				}
			}
			if diff := cmp.Diff(tc.wantMasq, masq, sortSet, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("masqueraded endpoints (-want +got):\n%s\n%s", diff, res)
			}
		})
	}
}

func uniqueVerdicts(res tracer.Result) []tracer.Verdict {
	var out []tracer.Verdict
	for _, v := range res.Verdicts() {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// withType, withNodePort, ... tweak the services of the packet-path world.
func withNodePort(port int32) func(*v1.Service) {
	return func(s *v1.Service) {
		if s.Spec.Type == v1.ServiceTypeClusterIP {
			s.Spec.Type = v1.ServiceTypeNodePort
		}
		s.Spec.Ports[0].NodePort = port
	}
}

func withLoadBalancer(ip string, sourceRanges ...string) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}}
		s.Spec.LoadBalancerSourceRanges = sourceRanges
	}
}

func withExternalLocal(s *v1.Service) {
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
}

func withInternalLocal(s *v1.Service) {
	s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
}

// packetWorld is one cluster with a service for every behaviour in the reference.
func packetWorld() []any {
	local := func(ip string) ep { return ep{IP: ip, Node: testNode} }
	remote := func(ip string) ep { return ep{IP: ip, Node: otherNode} }
	svc := func(name, ip string, tweaks ...func(*v1.Service)) *v1.Service {
		return makeService("ns", name, ip, tweaks...)
	}
	slice := func(name string, eps ...ep) *discovery.EndpointSlice {
		return makeSlice("ns", name, name+"-1", 80, eps...)
	}
	udp := svc("udp", "172.30.0.24", func(s *v1.Service) {
		s.Spec.Ports[0] = v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}
	})
	udpSlice := makeSlice("ns", "udp", "udp-1", 53, remote("10.180.1.14"))
	udpSlice.Ports[0] = discovery.EndpointPort{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}
	return []any{
		svc("clusterip", "172.30.0.10"), slice("clusterip", local("10.180.0.1"), remote("10.180.1.1")),
		svc("noeps", "172.30.0.11"),
		svc("nodeport", "172.30.0.12", withNodePort(30012)), slice("nodeport", local("10.180.0.2"), remote("10.180.1.2")),
		svc("nodeport-local", "172.30.0.13", withNodePort(30013), withExternalLocal), slice("nodeport-local", local("10.180.0.3"), remote("10.180.1.3")),
		svc("nodeport-local-none", "172.30.0.14", withNodePort(30014), withExternalLocal), slice("nodeport-local-none", remote("10.180.1.4")),
		svc("extip", "172.30.0.15", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.15"} }), slice("extip", remote("10.180.1.5")),
		svc("lb", "172.30.0.16", withLoadBalancer("203.0.113.16", lbAllowed), withNodePort(30016)), slice("lb", remote("10.180.1.6")),
		svc("itp-local", "172.30.0.17", withInternalLocal), slice("itp-local", local("10.180.0.7"), remote("10.180.1.7")),
		svc("itp-local-none", "172.30.0.18", withInternalLocal), slice("itp-local-none", remote("10.180.1.8")),
		svc("terminating", "172.30.0.19"), slice("terminating",
			ep{IP: "10.180.0.9", Node: testNode, NotReady: true, Terminating: true},
			ep{IP: "10.180.1.9", Node: otherNode, NotReady: true, Terminating: true, NotServing: true}),
		svc("mixed", "172.30.0.20"), slice("mixed", local("10.180.0.10"), ep{IP: "10.180.1.10", Node: otherNode, NotReady: true, Terminating: true}),
		svc("affinity", "172.30.0.21", func(s *v1.Service) {
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(600))}}
		}), slice("affinity", local("10.180.0.11"), remote("10.180.1.11")),
		svc("zone", "172.30.0.22"), slice("zone",
			ep{IP: "10.180.0.12", Node: testNode, ZoneHints: []string{testZone}},
			ep{IP: "10.180.1.12", Node: otherNode, ZoneHints: []string{"zone-b"}}),
		svc("lb-local", "172.30.0.23", withLoadBalancer("203.0.113.23"), withNodePort(30023), withExternalLocal),
		slice("lb-local", local("10.180.0.13"), remote("10.180.1.13")),
		udp, udpSlice,
		svc("local-terminating", "172.30.0.25", withNodePort(30025), withExternalLocal), slice("local-terminating",
			ep{IP: "10.180.0.15", Node: testNode, NotReady: true, Terminating: true},
			remote("10.180.1.15")),
	}
}

// TestPacketPaths traces packets through the rules the Proxier programs for every
// service type, traffic policy and endpoint-condition mix in the reference.
func TestPacketPaths(t *testing.T) {
	rs := programmed(t, testConfig(), packetWorld()...)
	node := tracer.Node{LocalAddrs: []netip.Addr{netip.MustParseAddr(nodeIPv4)}}
	both := func(a, b string) []string { return []string{a + ":80", b + ":80"} }
	one := func(a string) []string { return []string{a + ":80"} }
	local, ext := tracer.FromLocalProcess, tracer.FromPodOrExternal
	runPacketCases(t, rs, node, []packetCase{
		// ClusterIP.
		{name: "pod to cluster IP reaches every endpoint unmasqueraded", src: podSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: both("10.180.0.1", "10.180.1.1")},
		{name: "node to cluster IP is masqueraded", src: nodeIPv4, dst: "172.30.0.10", port: 80, origin: local, wantEndpoints: both("10.180.0.1", "10.180.1.1"), wantMasq: both("10.180.0.1", "10.180.1.1")},
		{name: "off-cluster source to cluster IP is masqueraded", src: outsideSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: both("10.180.0.1", "10.180.1.1"), wantMasq: both("10.180.0.1", "10.180.1.1")},
		{name: "hairpin: a pod reaching itself through its service is masqueraded", src: "10.180.0.1", dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: both("10.180.0.1", "10.180.1.1"), wantMasq: one("10.180.0.1")},
		{name: "wrong port is not translated", src: podSrc, dst: "172.30.0.10", port: 81, origin: ext},
		{name: "pod on another node reaches every endpoint", src: otherPodSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: both("10.180.0.1", "10.180.1.1")},
		{name: "UDP service", src: podSrc, dst: "172.30.0.24", port: 53, proto: "udp", origin: ext, wantEndpoints: []string{"10.180.1.14:53"}},
		{name: "UDP port of a TCP service is not translated", src: podSrc, dst: "172.30.0.10", port: 80, proto: "udp", origin: ext},

		// No endpoints.
		{name: "service without endpoints rejects pods", src: podSrc, dst: "172.30.0.11", port: 80, origin: ext, wantVerdicts: []tracer.Verdict{tracer.Reject}},
		{name: "service without endpoints rejects the node", src: nodeIPv4, dst: "172.30.0.11", port: 80, origin: local, wantVerdicts: []tracer.Verdict{tracer.Reject}},

		// NodePort.
		{name: "node port from outside, Cluster policy: every endpoint, masqueraded", src: outsideSrc, dst: nodeIPv4, port: 30012, origin: ext, wantEndpoints: both("10.180.0.2", "10.180.1.2"), wantMasq: both("10.180.0.2", "10.180.1.2")},
		{name: "node port from outside, Local policy: local endpoint, source kept", src: outsideSrc, dst: nodeIPv4, port: 30013, origin: ext, wantEndpoints: one("10.180.0.3")},
		{name: "node port from a pod, Local policy: short-circuited to every endpoint", src: podSrc, dst: nodeIPv4, port: 30013, origin: ext, wantEndpoints: both("10.180.0.3", "10.180.1.3")},
		{name: "node port from the node, Local policy: every endpoint, masqueraded", src: nodeIPv4, dst: nodeIPv4, port: 30013, origin: local, wantEndpoints: both("10.180.0.3", "10.180.1.3"), wantMasq: both("10.180.0.3", "10.180.1.3")},
		{name: "node port, Local policy, no local endpoint: dropped", src: outsideSrc, dst: nodeIPv4, port: 30014, origin: ext, wantVerdicts: []tracer.Verdict{tracer.Drop}},
		{name: "node port on loopback is off by default", src: "127.0.0.1", dst: "127.0.0.1", port: 30012, origin: local},
		{name: "node port, Local policy, only terminating local endpoint: it is used", src: outsideSrc, dst: nodeIPv4, port: 30025, origin: ext, wantEndpoints: one("10.180.0.15")},

		// ExternalIPs and LoadBalancer.
		{name: "external IP from outside: masqueraded", src: outsideSrc, dst: "203.0.113.15", port: 80, origin: ext, wantEndpoints: one("10.180.1.5"), wantMasq: one("10.180.1.5")},
		{name: "LB IP from an allowed source", src: outsideSrc, dst: "203.0.113.16", port: 80, origin: ext, wantEndpoints: one("10.180.1.6"), wantMasq: one("10.180.1.6")},
		{name: "LB IP from a source outside loadBalancerSourceRanges: dropped", src: blockedSrc, dst: "203.0.113.16", port: 80, origin: ext, wantVerdicts: []tracer.Verdict{tracer.Drop}},
		{name: "LB node port is not subject to source ranges", src: blockedSrc, dst: nodeIPv4, port: 30016, origin: ext, wantEndpoints: one("10.180.1.6"), wantMasq: one("10.180.1.6")},
		{name: "LB IP, Local policy: local endpoint, source kept", src: outsideSrc, dst: "203.0.113.23", port: 80, origin: ext, wantEndpoints: one("10.180.0.13")},
		{name: "LB IP, Local policy, from a pod: every endpoint", src: podSrc, dst: "203.0.113.23", port: 80, origin: ext, wantEndpoints: both("10.180.0.13", "10.180.1.13")},

		// Internal traffic policy.
		{name: "internalTrafficPolicy Local: local endpoint only", src: podSrc, dst: "172.30.0.17", port: 80, origin: ext, wantEndpoints: one("10.180.0.7")},
		{name: "internalTrafficPolicy Local without local endpoints: dropped", src: podSrc, dst: "172.30.0.18", port: 80, origin: ext, wantVerdicts: []tracer.Verdict{tracer.Drop}},

		// Endpoint conditions and topology.
		{name: "no ready endpoint: serving-terminating fallback", src: podSrc, dst: "172.30.0.19", port: 80, origin: ext, wantEndpoints: one("10.180.0.9")},
		{name: "ready endpoints win over terminating ones", src: podSrc, dst: "172.30.0.20", port: 80, origin: ext, wantEndpoints: one("10.180.0.10")},
		{name: "zone hints: only this zone's endpoint", src: podSrc, dst: "172.30.0.22", port: 80, origin: ext, wantEndpoints: one("10.180.0.12")},

		// Session affinity.
		{name: "affinity, new client: any endpoint", src: podSrc, dst: "172.30.0.21", port: 80, origin: ext, wantEndpoints: both("10.180.0.11", "10.180.1.11")},
		{name: "affinity, known client: its endpoint only", src: podSrc, dst: "172.30.0.21", port: 80, origin: ext,
			affinityHit:   EndpointChain(endpoints.ServicePortName{NamespacedName: nsName("ns", "affinity"), Port: "p80", Protocol: v1.ProtocolTCP}, "10.180.1.11:80"),
			wantEndpoints: one("10.180.1.11")},
	})
}

// TestPacketPathsIPv6 traces a dual-stack service through the ip6tables rules.
func TestPacketPathsIPv6(t *testing.T) {
	cfg := testConfig()
	cfg.Family = v1.IPv6Protocol
	cfg.NodeIPs = []netip.Addr{netip.MustParseAddr(testNodeIPv6)}
	cfg.Local = node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("fd00:10::/64"))
	dual := func(s *v1.Service) {
		s.Spec.ClusterIPs = []string{"172.30.0.30", "fd00:30::30"}
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30030
	}
	rs := programmed(t, cfg,
		makeService("ns", "dual", "172.30.0.30", dual),
		makeSlice("ns", "dual", "dual-v4", 80, ep{IP: "10.180.0.30", Node: testNode}),
		makeSlice("ns", "dual", "dual-v6", 80, ep{IP: "fd00:10::30", Node: testNode}, ep{IP: "fd00:10::31", Node: otherNode}),
		makeService("ns", "v4only", "172.30.0.31"),
		makeSlice("ns", "v4only", "v4only-1", 80, ep{IP: "10.180.0.31", Node: testNode}),
	)
	node := tracer.Node{LocalAddrs: []netip.Addr{netip.MustParseAddr(testNodeIPv6)}}
	runPacketCases(t, rs, node, []packetCase{
		{name: "pod to IPv6 cluster IP", src: "fd00:10::50", dst: "fd00:30::30", port: 80, wantEndpoints: []string{"[fd00:10::30]:80", "[fd00:10::31]:80"}},
		{name: "outside to IPv6 node port: masqueraded", src: "2001:db8::7", dst: testNodeIPv6, port: 30030, wantEndpoints: []string{"[fd00:10::30]:80", "[fd00:10::31]:80"}, wantMasq: []string{"[fd00:10::30]:80", "[fd00:10::31]:80"}},
		{name: "node to IPv6 cluster IP: masqueraded", src: testNodeIPv6, dst: "fd00:30::30", port: 80, origin: tracer.FromLocalProcess, wantEndpoints: []string{"[fd00:10::30]:80", "[fd00:10::31]:80"}, wantMasq: []string{"[fd00:10::30]:80", "[fd00:10::31]:80"}},
	})
	if c := rs.Chain("nat", ServiceChain(endpoints.ServicePortName{NamespacedName: nsName("ns", "v4only"), Port: "p80", Protocol: v1.ProtocolTCP})); c != nil {
		t.Errorf("IPv4-only service has an ip6tables chain: %v", c.Name)
	}
}

// TestEndpointSelectionProbabilities pins how a service spreads new connections: with
// n ready endpoints each must be chosen with probability 1/n. kube-proxy gets there
// with a chain of statistic matches, the i-th (from 0) taken with probability
// 1/(n-i), so that endpoint i is reached with prod_{j<i}(1 - 1/(n-j)) * 1/(n-i) = 1/n.
// The tracer multiplies the probabilities of the random branches a packet takes, so
// summing its outcomes per endpoint computes that product from the programmed rules.
// The rules print probabilities with 10 decimals, so the products carry rounding
// errors below 1e-10 for n <= 100; the tolerance is 1e-9.
//
// mutation-checked: rendering every statistic match with probability 1/n instead of
// 1/(n-i) fails this test from n=3 (shares 1/3, 2/9, 4/9; at n=2 both rules agree,
// and the last of 100 endpoints gets 0.37 instead of 0.01).
func TestEndpointSelectionProbabilities(t *testing.T) {
	const tolerance = 1e-9
	node := tracer.Node{LocalAddrs: []netip.Addr{netip.MustParseAddr(testNodeIP)}}
	for n := 1; n <= 100; n++ {
		eps := make([]ep, n)
		for i := range eps {
			eps[i] = ep{IP: netip.AddrFrom4([4]byte{10, 180, 0, byte(i + 1)}).String(), Node: testNode}
		}
		rs := programmed(t, testConfig(), makeService("ns", "web", "172.30.0.10"), makeSlice("ns", "web", "web-1", 8080, eps...))
		pkt := tracer.Packet{Src: netip.MustParseAddr(podSrc), Dst: netip.MustParseAddr("172.30.0.10"), Proto: "tcp",
			SrcPort: 40000, DstPort: 80, InIface: "eth0"}
		res, err := tracer.Trace(rs, node, pkt, tracer.Options{})
		if err != nil {
			t.Fatalf("n=%d: trace: %v", n, err)
		}
		share := map[string]float64{}
		for _, o := range res.Outcomes {
			if o.Verdict != tracer.Accept || o.Endpoint == "" {
				t.Fatalf("n=%d: an outcome does not reach an endpoint: %s\n%s", n, o, res)
			}
			share[o.Endpoint] += o.Probability
		}
		if len(share) != n {
			t.Fatalf("n=%d: %d endpoints reachable, want %d\n%s", n, len(share), n, res)
		}
		for endpoint, p := range share {
			if math.Abs(p-1/float64(n)) > tolerance {
				t.Errorf("n=%d: endpoint %s is chosen with probability %.12f, want 1/%d = %.12f", n, endpoint, p, n, 1/float64(n))
			}
		}
	}
}
