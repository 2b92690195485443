package explain

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// The IPVS world: node-a (192.168.0.10), cluster CIDR 10.244.0.0/16.
//
//	ns/web:http     10.96.0.1:80 TCP, endpoints 10.244.1.5 (node-a), 10.244.2.5 (node-b),
//	                node port 30080, load balancer 1.2.3.4 open to 203.0.113.0/25
//	ns/dns:dns      10.96.0.2:53 UDP, no endpoints
//	ns/local:http   10.96.0.3:80 TCP, externalTrafficPolicy Local, node port 30081,
//	                endpoint 10.244.1.6 (node-a); ClientIP affinity 600 s; scheduler lc
var (
	ipvsNodeIP = netip.MustParseAddr("192.168.0.10")
	web1       = netip.MustParseAddrPort("10.244.1.5:8080")
	web2       = netip.MustParseAddrPort("10.244.2.5:8080")
	local1     = netip.MustParseAddrPort("10.244.1.6:8080")
)

func spn(name, port string, proto v1.Protocol) endpoints.ServicePortName {
	return endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}, Port: port, Protocol: proto}
}

func ipvsWorld(masqueradeAll bool) (*endpoints.Snapshot, *ipvs.Config) {
	web := spn("web", "http", v1.ProtocolTCP)
	dns := spn("dns", "dns", v1.ProtocolUDP)
	local := spn("local", "http", v1.ProtocolTCP)
	ready := func(ap netip.AddrPort, nodeName string) *endpoints.Endpoint {
		return &endpoints.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), NodeName: nodeName, Ready: true, Serving: true}
	}
	snap := &endpoints.Snapshot{
		Services: map[endpoints.ServicePortName]*endpoints.ServicePort{
			web: {Name: web, Port: 80, NodePort: 30080, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.1")},
				LoadBalancerVIPs:         []netip.Addr{netip.MustParseAddr("1.2.3.4")},
				LoadBalancerSourceRanges: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25")}},
			dns: {Name: dns, Port: 53, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.2")}},
			local: {Name: local, Port: 80, NodePort: 30081, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.3")},
				ExternalPolicyLocal: true, HealthCheckNodePort: 32000, AffinityTimeoutSeconds: 600, Scheduler: "lc"},
		},
		Endpoints: map[endpoints.ServicePortName][]*endpoints.Endpoint{
			web:   {ready(web1, "node-a"), ready(web2, "node-b")},
			local: {ready(local1, "node-a")},
		},
	}
	cfg := &ipvs.Config{FamilyConfig: node.FamilyConfig{
		Family:        v1.IPv4Protocol,
		Node:          endpoints.NodeTopology{Name: "node-a"},
		NodeIPs:       []netip.Addr{ipvsNodeIP},
		Local:         node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("10.244.0.0/16")),
		MasqueradeAll: masqueradeAll,
	}}
	return snap, cfg
}

// TestExplainIPVS checks IPVS mode's answers over a rendered state: the Service and
// address kind, scheduler, weights, affinity, which endpoints are masqueraded and why,
// and the reasons for refusals.
// mutation-checked: leaving KUBE-LOOP-BACK out of the hairpin (tracer runs POSTROUTING
// before the DNAT) fails "hairpin"; dropping the VIPs from IPVSInput.LocalAddrs fails
// "unknown port on a cluster IP" (the packet is forwarded, not rejected); treating a
// virtual server without real servers as delivered fails "no endpoints".
func TestExplainIPVS(t *testing.T) {
	type want struct {
		service    string
		kind       AddressKind
		verdict    Verdict
		endpoints  []string // "addr masq" or "addr"
		scheduler  string
		masqReason string // substring
		reason     string // substring
		affinity   int
	}
	tests := []struct {
		name          string
		masqueradeAll bool
		pkt           Packet
		want          want
	}{
		{name: "pod to cluster IP",
			pkt:  Packet{Src: netip.MustParseAddr("10.244.1.9"), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromPod},
			want: want{service: "ns/web:http", kind: ClusterIP, verdict: Delivered, scheduler: "rr", endpoints: []string{"10.244.1.5:8080", "10.244.2.5:8080"}, reason: "2 real servers"}},
		{name: "outside client to cluster IP is masqueraded",
			pkt:  Packet{Src: netip.MustParseAddr("192.168.5.5"), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromOutside},
			want: want{service: "ns/web:http", kind: ClusterIP, verdict: Delivered, scheduler: "rr", endpoints: []string{"10.244.1.5:8080 masq", "10.244.2.5:8080 masq"}, masqReason: "not a pod"}},
		{name: "masquerade-all", masqueradeAll: true,
			pkt:  Packet{Src: netip.MustParseAddr("10.244.1.9"), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromPod},
			want: want{service: "ns/web:http", kind: ClusterIP, verdict: Delivered, scheduler: "rr", endpoints: []string{"10.244.1.5:8080 masq", "10.244.2.5:8080 masq"}, masqReason: "--masquerade-all"}},
		{name: "hairpin",
			pkt:  Packet{Src: web1.Addr(), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromPod},
			want: want{service: "ns/web:http", kind: ClusterIP, verdict: Delivered, scheduler: "rr", endpoints: []string{"10.244.1.5:8080 masq", "10.244.2.5:8080"}, masqReason: "hairpin"}},
		{name: "node port",
			pkt:  Packet{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.AddrPortFrom(ipvsNodeIP, 30080), Proto: "tcp", From: FromOutside},
			want: want{service: "ns/web:http", kind: NodePort, verdict: Delivered, scheduler: "rr", endpoints: []string{"10.244.1.5:8080 masq", "10.244.2.5:8080 masq"}, masqReason: "node-port"}},
		{name: "node port with local policy keeps the client address",
			pkt:  Packet{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.AddrPortFrom(ipvsNodeIP, 30081), Proto: "tcp", From: FromOutside},
			want: want{service: "ns/local:http", kind: NodePort, verdict: Delivered, scheduler: "lc", affinity: 600, endpoints: []string{"10.244.1.6:8080"}, masqReason: "externalTrafficPolicy is Local"}},
		{name: "load balancer from an allowed range",
			pkt:  Packet{Src: netip.MustParseAddr("203.0.113.7"), Dst: netip.MustParseAddrPort("1.2.3.4:80"), Proto: "tcp", From: FromOutside},
			want: want{service: "ns/web:http", kind: LoadBalancerIP, verdict: Delivered, scheduler: "rr", endpoints: []string{"10.244.1.5:8080 masq", "10.244.2.5:8080 masq"}, masqReason: "load-balancer"}},
		{name: "load balancer from outside the ranges",
			pkt:  Packet{Src: netip.MustParseAddr("203.0.113.200"), Dst: netip.MustParseAddrPort("1.2.3.4:80"), Proto: "tcp", From: FromOutside},
			want: want{service: "ns/web:http", kind: LoadBalancerIP, verdict: Dropped, scheduler: "rr", reason: "loadBalancerSourceRanges"}},
		{name: "no endpoints",
			pkt:  Packet{Src: netip.MustParseAddr("10.244.1.9"), Dst: netip.MustParseAddrPort("10.96.0.2:53"), Proto: "udp", From: FromPod},
			want: want{service: "ns/dns:dns", kind: ClusterIP, verdict: Rejected, scheduler: "rr", reason: "no real servers"}},
		{name: "unknown port on a cluster IP",
			pkt:  Packet{Src: netip.MustParseAddr("10.244.1.9"), Dst: netip.MustParseAddrPort("10.96.0.1:81"), Proto: "tcp", From: FromPod},
			want: want{verdict: Rejected, reason: "no Service listens on tcp port 81"}},
		{name: "not a service",
			pkt:  Packet{Src: netip.MustParseAddr("10.244.1.9"), Dst: web2, Proto: "tcp", From: FromPod},
			want: want{verdict: NotAService, reason: "no IPVS virtual server"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, cfg := ipvsWorld(tc.masqueradeAll)
			in, err := IPVSInputFromRender(snap, cfg)
			if err != nil {
				t.Fatal(err)
			}
			e, err := ExplainIPVS(in, tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			got := want{verdict: e.Verdict, scheduler: e.Scheduler}
			if e.Service != nil {
				got.service, got.kind = e.Service.String(), e.Service.Kind
			}
			for _, ep := range e.Endpoints {
				s := ep.Address.String()
				if ep.Masquerade {
					s += " masq"
				}
				got.endpoints = append(got.endpoints, s)
				if ep.Weight == nil || *ep.Weight != 1 {
					t.Errorf("endpoint %s: weight %v, want 1", ep.Address, ep.Weight)
				}
			}
			if e.Affinity != nil {
				got.affinity = e.Affinity.TimeoutSeconds
			}
			got.masqReason, got.reason = tc.want.masqReason, tc.want.reason
			if !strings.Contains(e.MasqueradeReason, tc.want.masqReason) {
				got.masqReason = e.MasqueradeReason
			}
			if !strings.Contains(e.Reason, tc.want.reason) {
				got.reason = e.Reason
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				var b strings.Builder
				_ = e.WriteText(&b)
				t.Errorf("(-want +got):\n%s\n%s", diff, b.String())
			}
			if want := map[Verdict]int{Delivered: 0, NotAService: 0, Dropped: 1, Rejected: 1}[e.Verdict]; e.ExitCode() != want {
				t.Errorf("exit code %d, want %d", e.ExitCode(), want)
			}
		})
	}
}

// TestExplainIPVSNamesNodesAndSteps checks the parts a reader follows: local endpoints
// are marked, and the path names the companion chain and the virtual server in words.
func TestExplainIPVSNamesNodesAndSteps(t *testing.T) {
	snap, cfg := ipvsWorld(false)
	in, err := IPVSInputFromRender(snap, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ExplainIPVS(in, Packet{Src: netip.MustParseAddr("192.168.5.5"), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromOutside})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Endpoints) != 2 || !e.Endpoints[0].Local || e.Endpoints[0].Node != "node-a" || e.Endpoints[1].Local || e.Endpoints[1].Node != "node-b" {
		t.Errorf("endpoints: %+v", e.Endpoints)
	}
	var text strings.Builder
	if err := e.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"nat/KUBE-SERVICES\n      the destination is a Service's cluster IP and port and the source is outside 10.244.0.0/16: marked for masquerade",
		"IPVS TCP/10.96.0.1:80\n      the scheduler can send the connection to real server 10.244.1.5:8080",
		`chosen by the IPVS "rr" scheduler`,
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

// TestExplainIPVSIPv6 checks that the IPv6 sets (KUBE-6-…) are read and worded.
func TestExplainIPVSIPv6(t *testing.T) {
	web := spn("web6", "http", v1.ProtocolTCP)
	ep := netip.MustParseAddrPort("[fd00:244::5]:8080")
	snap := &endpoints.Snapshot{
		Services: map[endpoints.ServicePortName]*endpoints.ServicePort{
			web: {Name: web, Port: 80, ClusterIPs: []netip.Addr{netip.MustParseAddr("fd00:96::1")}},
		},
		Endpoints: map[endpoints.ServicePortName][]*endpoints.Endpoint{
			web: {{IP: ep.Addr(), Port: 8080, NodeName: "node-a", Ready: true, Serving: true}},
		},
	}
	cfg := &ipvs.Config{FamilyConfig: node.FamilyConfig{
		Family:  v1.IPv6Protocol,
		Node:    endpoints.NodeTopology{Name: "node-a"},
		NodeIPs: []netip.Addr{netip.MustParseAddr("fd00:10::10")},
		Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("fd00:244::/56")),
	}}
	in, err := IPVSInputFromRender(snap, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ExplainIPVS(in, Packet{Src: netip.MustParseAddr("2001:db8::7"), Dst: netip.MustParseAddrPort("[fd00:96::1]:80"), Proto: "tcp", From: FromOutside})
	if err != nil {
		t.Fatal(err)
	}
	if e.Verdict != Delivered || !e.Masquerade || len(e.Endpoints) != 1 || e.Endpoints[0].Address != ep {
		t.Errorf("got %+v", e)
	}
	if !strings.Contains(e.MasqueradeReason, "not a pod") {
		t.Errorf("masquerade reason %q", e.MasqueradeReason)
	}
}

// TestExplainIPVSDraining checks real servers of weight 0 (graceful termination): they
// get no new connections, so they are not candidates, and with no other left the
// connection is refused, as the guest's real traffic shows (TestDaemonInVM).
// mutation-checked: counting weight-0 real servers as candidates fails both cases
// (found by the guest test: 3 candidates where the connection was refused).
func TestExplainIPVSDraining(t *testing.T) {
	snap, cfg := ipvsWorld(false)
	in, err := IPVSInputFromRender(snap, cfg)
	if err != nil {
		t.Fatal(err)
	}
	web := netip.MustParseAddrPort("10.96.0.1:80")
	setWeight := func(addr netip.AddrPort, weight int) {
		for i := range in.Servers {
			if in.Servers[i].Addr != web.Addr() || in.Servers[i].Port != web.Port() {
				continue
			}
			for j := range in.Servers[i].RealServers {
				if in.Servers[i].RealServers[j].Addr == addr {
					in.Servers[i].RealServers[j].Weight = weight
				}
			}
		}
	}
	pkt := Packet{Src: netip.MustParseAddr("10.244.1.9"), Dst: web, Proto: "tcp", From: FromPod}

	setWeight(web1, 0)
	e, err := ExplainIPVS(in, pkt)
	if err != nil {
		t.Fatal(err)
	}
	if e.Verdict != Delivered || len(e.Endpoints) != 1 || e.Endpoints[0].Address != web2 || !strings.Contains(e.Reason, "1 more of weight 0 are draining") {
		t.Errorf("one draining: %s %v %q", e.Verdict, e.Endpoints, e.Reason)
	}

	setWeight(web2, 0)
	if e, err = ExplainIPVS(in, pkt); err != nil {
		t.Fatal(err)
	}
	if e.Verdict != Rejected || len(e.Endpoints) != 0 || !strings.Contains(e.Reason, "2 of weight 0 are draining") {
		t.Errorf("all draining: %s %v %q", e.Verdict, e.Endpoints, e.Reason)
	}
}
