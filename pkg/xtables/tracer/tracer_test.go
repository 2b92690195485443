package tracer

import (
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// IP plan:
//   pod CIDR        10.0.0.0/8   (endpoints 10.180.0.0/16, a client pod 10.0.1.5)
//   service CIDR    172.30.0.0/16
//   node IPs        192.168.0.2 (this node), 192.168.0.3 (another node)
//   external client 203.0.113.7; load balancer IP 1.2.3.4
//   IPv6 endpoints  fd00:10::/64, service fd00:30::1

// kubeRules is a cut-down kube-proxy ruleset: svc A (tcp 80, three
// endpoints, ClientIP affinity on the first), a NodePort 3001 for A via
// KUBE-EXT-A, svc B (udp 53) without endpoints, and a load balancer 1.2.3.4
// for A with source ranges.
const kubeRules = `*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A INPUT -m conntrack --ctstate NEW -j KUBE-PROXY-FIREWALL
-A INPUT -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -j KUBE-PROXY-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES
-A FORWARD -j KUBE-FORWARD
-A OUTPUT -m conntrack --ctstate NEW -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment "ns/b:dns has no endpoints" -m udp -p udp -d 172.30.0.2 --dport 53 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns/b:dns has no endpoints" -m addrtype --dst-type LOCAL -m udp -p udp --dport 3053 -j REJECT
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-PROXY-FIREWALL -m comment --comment "ns/a:p traffic not accepted by KUBE-FW-A" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-EXT-A - [0:0]
:KUBE-FW-A - [0:0]
:KUBE-SEP-A1 - [0:0]
:KUBE-SEP-A2 - [0:0]
:KUBE-SEP-A3 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-A
-A KUBE-SERVICES -m comment --comment "ns/a:p loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-FW-A
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -m comment --comment ns/a:p -m tcp -p tcp --dport 3001 -j KUBE-EXT-A
-A KUBE-EXT-A -m comment --comment "masquerade traffic for ns/a:p external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-A -j KUBE-SVC-A
-A KUBE-FW-A -m comment --comment "ns/a:p loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-A
-A KUBE-FW-A -m comment --comment "other traffic to ns/a:p will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-SVC-A -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.180.0.1:8080" -m recent --name KUBE-SEP-A1 --rcheck --seconds 10800 --reap -j KUBE-SEP-A1
-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.180.0.1:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A1
-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.180.0.2:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A2
-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.180.0.3:8080" -j KUBE-SEP-A3
-A KUBE-SEP-A1 -m comment --comment ns/a:p -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-A1 -m comment --comment ns/a:p -m recent --name KUBE-SEP-A1 --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:8080
-A KUBE-SEP-A2 -m comment --comment ns/a:p -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-A2 -m comment --comment ns/a:p -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:8080
-A KUBE-SEP-A3 -m comment --comment ns/a:p -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-A3 -m comment --comment ns/a:p -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:8080
COMMIT
`

var (
	thisNode = Node{LocalAddrs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}}
	allOfA   = []string{"10.180.0.1:8080", "10.180.0.2:8080", "10.180.0.3:8080"}
)

func mustRuleset(t *testing.T, family ruleset.Family, payload string) *ruleset.Ruleset {
	t.Helper()
	rs := ruleset.New(family)
	if err := rs.Apply([]byte(payload), true); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return rs
}

func TestTraceKubeRules(t *testing.T) {
	rs := mustRuleset(t, ruleset.IPv4, kubeRules)
	tests := []struct {
		name          string
		src, dst      string
		proto         string
		port          int
		origin        Origin
		affinity      string
		wantEndpoints []string
		wantMasq      bool
		wantVerdicts  []Verdict
	}{
		{name: "pod to cluster IP reaches every endpoint unmasqueraded", src: "10.0.1.5", dst: "172.30.0.1", port: 80,
			wantEndpoints: allOfA, wantVerdicts: []Verdict{Accept}},
		{name: "hairpin from an endpoint is masqueraded", src: "10.180.0.2", dst: "172.30.0.1", port: 80,
			wantEndpoints: allOfA, wantMasq: true, wantVerdicts: []Verdict{Accept}},
		{name: "off-cluster source to cluster IP is masqueraded", src: "203.0.113.7", dst: "172.30.0.1", port: 80,
			wantEndpoints: allOfA, wantMasq: true, wantVerdicts: []Verdict{Accept}},
		{name: "affinity hit goes to its endpoint", src: "10.0.1.5", dst: "172.30.0.1", port: 80, affinity: "KUBE-SEP-A1",
			wantEndpoints: []string{"10.180.0.1:8080"}, wantVerdicts: []Verdict{Accept}},
		{name: "wrong port misses the service and is forwarded as is", src: "10.0.1.5", dst: "172.30.0.1", port: 81,
			wantVerdicts: []Verdict{Accept}},
		{name: "node port on a local IP is masqueraded", src: "203.0.113.7", dst: "192.168.0.2", port: 3001,
			wantEndpoints: allOfA, wantMasq: true, wantVerdicts: []Verdict{Accept}},
		{name: "node port on another node's IP is not ours", src: "203.0.113.7", dst: "192.168.0.3", port: 3001,
			wantVerdicts: []Verdict{Accept}},
		{name: "local process to node port on loopback", src: "127.0.0.1", dst: "127.0.0.1", port: 3001, origin: FromLocalProcess,
			wantEndpoints: allOfA, wantMasq: true, wantVerdicts: []Verdict{Accept}},
		{name: "local process to cluster IP from the node IP is masqueraded", src: "192.168.0.2", dst: "172.30.0.1", port: 80, origin: FromLocalProcess,
			wantEndpoints: allOfA, wantMasq: true, wantVerdicts: []Verdict{Accept}},
		{name: "service without endpoints is rejected when forwarded", src: "10.0.1.5", dst: "172.30.0.2", proto: "udp", port: 53,
			wantVerdicts: []Verdict{Reject}},
		{name: "service without endpoints is rejected for local processes", src: "192.168.0.2", dst: "172.30.0.2", proto: "udp", port: 53, origin: FromLocalProcess,
			wantVerdicts: []Verdict{Reject}},
		{name: "node port without endpoints is rejected on input", src: "203.0.113.7", dst: "192.168.0.2", proto: "udp", port: 3053,
			wantVerdicts: []Verdict{Reject}},
		{name: "local process to a dead node port loops back and is rejected on input", src: "192.168.0.2", dst: "192.168.0.2", proto: "udp", port: 3053, origin: FromLocalProcess,
			wantVerdicts: []Verdict{Reject}},
		{name: "load balancer from an allowed range", src: "203.0.113.7", dst: "1.2.3.4", port: 80,
			wantEndpoints: allOfA, wantMasq: true, wantVerdicts: []Verdict{Accept}},
		{name: "load balancer from outside the ranges is dropped by the firewall", src: "203.0.113.200", dst: "1.2.3.4", port: 80,
			wantVerdicts: []Verdict{Drop}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proto := tc.proto
			if proto == "" {
				proto = "tcp"
			}
			pkt := Packet{Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst), Proto: proto, DstPort: tc.port, Origin: tc.origin}
			got, err := Trace(rs, thisNode, pkt, Options{AffinityHit: tc.affinity})
			if err != nil {
				t.Fatalf("Trace: %v", err)
			}
			if diff := cmp.Diff(tc.wantEndpoints, got.Endpoints); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s\n%s", diff, got)
			}
			if got.Masquerade != tc.wantMasq {
				t.Errorf("masquerade = %v, want %v\n%s", got.Masquerade, tc.wantMasq, got)
			}
			if diff := cmp.Diff(tc.wantVerdicts, got.Verdicts()); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s\n%s", diff, got)
			}
			total := 0.0
			for _, o := range got.Outcomes {
				total += o.Probability
			}
			if math.Abs(total-1) > 1e-6 {
				t.Errorf("outcome probabilities sum to %v, want 1\n%s", total, got)
			}
		})
	}
}

func TestTraceStatisticProbabilities(t *testing.T) {
	rs := mustRuleset(t, ruleset.IPv4, kubeRules)
	pkt := Packet{Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("172.30.0.1"), Proto: "tcp", DstPort: 80}
	got, err := Trace(rs, thisNode, pkt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Outcomes) != 3 {
		t.Fatalf("want 3 outcomes:\n%s", got)
	}
	for _, o := range got.Outcomes {
		if math.Abs(o.Probability-1.0/3) > 1e-6 {
			t.Errorf("%s: probability %v, want 1/3\n%s", o.Endpoint, o.Probability, got)
		}
		if o.Local {
			t.Errorf("%s should be forwarded", o.Endpoint)
		}
	}
}

// TestTraceSemantics checks the walk itself on small hand-written rulesets.
func TestTraceSemantics(t *testing.T) {
	node := Node{LocalAddrs: []netip.Addr{netip.MustParseAddr("192.168.0.2")}}
	tests := []struct {
		name          string
		payload       string
		pkt           Packet
		wantEndpoints []string
		wantOutcomes  []string
	}{{
		name: "probability 1 and 0 do not branch",
		payload: `*nat
:X - [0:0]
-A PREROUTING -m statistic --mode random --probability 0 -j DNAT --to-destination 10.1.0.1:1
-A PREROUTING -m statistic --mode random --probability 1 -j DNAT --to-destination 10.1.0.2:2
COMMIT
`,
		wantOutcomes: []string{"ACCEPT p=1.0000 endpoint=10.1.0.2:2"},
	}, {
		name: "RETURN resumes in the caller, fall-through too",
		payload: `*nat
:A - [0:0]
:B - [0:0]
-A PREROUTING -j A
-A PREROUTING -j DNAT --to-destination 10.1.0.9
-A A -j B
-A A -s 10.8.0.0/16 -j DNAT --to-destination 10.1.0.1
-A B -j RETURN
-A B -j DNAT --to-destination 10.1.0.2
COMMIT
`,
		wantOutcomes: []string{"ACCEPT p=1.0000 endpoint=10.1.0.9:80"},
	}, {
		name: "goto does not come back to the chain holding it",
		payload: `*nat
:A - [0:0]
:B - [0:0]
-A PREROUTING -j A
-A PREROUTING -j DNAT --to-destination 10.1.0.9:9
-A A -g B
-A A -j DNAT --to-destination 10.1.0.1:1
COMMIT
`,
		wantOutcomes: []string{"ACCEPT p=1.0000 endpoint=10.1.0.9:9"},
	}, {
		name: "marks cross from nat PREROUTING to filter and nat POSTROUTING",
		payload: `*nat
-A PREROUTING -j MARK --set-xmark 0x10/0xff
-A POSTROUTING -m mark --mark 0x10/0xf0 -j MASQUERADE
COMMIT
*filter
-A FORWARD -m mark ! --mark 0x10 -j DROP
COMMIT
`,
		wantOutcomes: []string{"ACCEPT p=1.0000 masquerade"},
	}, {
		name: "DNAT to a local address goes to INPUT, not FORWARD",
		payload: `*nat
-A PREROUTING -j DNAT --to-destination 192.168.0.2:22
COMMIT
*filter
:FORWARD DROP [0:0]
-A INPUT -m conntrack --ctstate DNAT -j ACCEPT
-A INPUT -j DROP
COMMIT
`,
		wantOutcomes: []string{"ACCEPT p=1.0000 endpoint=192.168.0.2:22 local"},
	}, {
		name: "DNAT away from a local address goes to FORWARD and its policy",
		payload: `*nat
-A PREROUTING -d 192.168.0.2 -j DNAT --to-destination 10.1.0.1:22
COMMIT
*filter
:FORWARD DROP [0:0]
COMMIT
`,
		pkt:          Packet{Dst: netip.MustParseAddr("192.168.0.2")},
		wantOutcomes: []string{"DROP p=1.0000 endpoint=10.1.0.1:22"},
	}, {
		name: "addrtype and negation",
		payload: `*filter
-A FORWARD -m addrtype --dst-type LOCAL -j DROP
-A FORWARD -m addrtype ! --src-type UNICAST -j DROP
-A FORWARD ! -d 10.0.0.0/8 -j REJECT
-A FORWARD ! -p udp -j ACCEPT
-A FORWARD -j DROP
COMMIT
`,
		wantOutcomes: []string{"ACCEPT p=1.0000"},
	}, {
		name: "nested random choices multiply",
		payload: `*nat
:A - [0:0]
-A PREROUTING -m statistic --mode random --probability 0.5 -j A
-A PREROUTING -j DNAT --to-destination 10.1.0.3
-A A -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.1.0.1
-A A -j DNAT --to-destination 10.1.0.2
COMMIT
`,
		wantEndpoints: []string{"10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80"},
		wantOutcomes: []string{
			"ACCEPT p=0.2500 endpoint=10.1.0.1:80",
			"ACCEPT p=0.2500 endpoint=10.1.0.2:80",
			"ACCEPT p=0.5000 endpoint=10.1.0.3:80",
		},
	}, {
		name: "interfaces",
		payload: `*filter
-A FORWARD -i eth+ -o cni0 -j REJECT
-A FORWARD -i eth+ ! -o cni0 -j DROP
COMMIT
`,
		pkt:          Packet{InIface: "eth1"},
		wantOutcomes: []string{"DROP p=1.0000"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := mustRuleset(t, ruleset.IPv4, tc.payload)
			pkt := tc.pkt
			if !pkt.Src.IsValid() {
				pkt.Src = netip.MustParseAddr("10.9.0.1")
			}
			if !pkt.Dst.IsValid() {
				pkt.Dst = netip.MustParseAddr("10.2.0.1")
			}
			pkt.Proto, pkt.DstPort = "tcp", 80
			got, err := Trace(rs, node, pkt, Options{})
			if err != nil {
				t.Fatalf("Trace: %v", err)
			}
			if tc.wantEndpoints != nil {
				if diff := cmp.Diff(tc.wantEndpoints, got.Endpoints); diff != "" {
					t.Errorf("endpoints (-want +got):\n%s", diff)
				}
			}
			var outcomes []string
			for _, o := range got.Outcomes {
				outcomes = append(outcomes, o.String())
			}
			if diff := cmp.Diff(tc.wantOutcomes, outcomes); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s\n%s", diff, got)
			}
		})
	}
}

func TestTraceIPv6(t *testing.T) {
	rs := mustRuleset(t, ruleset.IPv6, `*nat
:KUBE-SEP-A - [0:0]
-A OUTPUT -d fd00:30::1 -p tcp --dport 80 -j KUBE-SEP-A
-A KUBE-SEP-A -m tcp -p tcp -j DNAT --to-destination [fd00:10::1]:8080
COMMIT
`)
	pkt := Packet{Src: netip.MustParseAddr("::1"), Dst: netip.MustParseAddr("fd00:30::1"), Proto: "tcp", DstPort: 80, Origin: FromLocalProcess}
	got, err := Trace(rs, Node{}, pkt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"[fd00:10::1]:8080"}, got.Endpoints); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	if _, err := Trace(rs, Node{}, Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}, Options{}); err == nil {
		t.Errorf("tracing an IPv4 packet through an IPv6 ruleset should fail")
	}
}

func TestTraceNamesRulesVisited(t *testing.T) {
	rs := mustRuleset(t, ruleset.IPv4, kubeRules)
	pkt := Packet{Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("172.30.0.1"), Proto: "tcp", DstPort: 80}
	got, err := Trace(rs, thisNode, pkt, Options{AffinityHit: "KUBE-SEP-A1"})
	if err != nil {
		t.Fatal(err)
	}
	trace := strings.Join(got.Outcomes[0].Trace, "\n")
	for _, want := range []string{
		`nat/PREROUTING: -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`nat/KUBE-SVC-A: -A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.180.0.1:8080" -m recent --name KUBE-SEP-A1 --rcheck --seconds 10800 --reap -j KUBE-SEP-A1`,
		`nat/KUBE-SEP-A1: -A KUBE-SEP-A1 -m comment --comment ns/a:p -m recent --name KUBE-SEP-A1 --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:8080`,
		`filter/FORWARD: policy ACCEPT`,
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
}

// TestTraceHits checks the structured trace lists the same events as Trace, in
// order, with the matched rule or the ending policy. Mutation-checked: not
// recording the policy hit in runHooks fails this test.
func TestTraceHits(t *testing.T) {
	rs := mustRuleset(t, ruleset.IPv4, kubeRules)
	pkt := Packet{Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("172.30.0.1"), Proto: "tcp", DstPort: 80}
	got, err := Trace(rs, thisNode, pkt, Options{AffinityHit: "KUBE-SEP-A1"})
	if err != nil {
		t.Fatal(err)
	}
	o := got.Outcomes[0]
	if len(o.Hits) != len(o.Trace) {
		t.Fatalf("%d hits for %d trace lines", len(o.Hits), len(o.Trace))
	}
	var lines []string
	for _, h := range o.Hits {
		if h.Rule == nil {
			lines = append(lines, h.Table+"/"+h.Chain+": policy "+h.Policy)
		} else {
			lines = append(lines, h.Table+"/"+h.Chain+": -A "+h.Chain+" "+h.Rule.String())
		}
	}
	if diff := cmp.Diff(o.Trace, lines); diff != "" {
		t.Errorf("hits differ from the trace (-trace +hits):\n%s", diff)
	}
}
