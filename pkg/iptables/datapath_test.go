package iptables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// chainRules returns the rules of one chain in a payload, without the "-A NAME ".
func chainRules(payload []byte, chain string) []string {
	var out []string
	for _, l := range strings.Split(string(payload), "\n") {
		if rest, ok := strings.CutPrefix(l, "-A "+chain+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestMasqueradeBit checks that --iptables-masquerade-bit moves the mark of every
// rule that sets or tests it, and that packets are still masqueraded.
// mutation-checked: leaving the fixed 0x4000 in KUBE-MARK-MASQ fails the trace (the
// mark set no longer matches the one KUBE-POSTROUTING tests).
func TestMasqueradeBit(t *testing.T) {
	cfg := testConfig()
	cfg.MasqueradeMark = 1 << 3
	objects := []any{
		makeService("ns", "web", "172.30.0.10"),
		makeSlice("ns", "web", "web-1", 80, ep{IP: "10.180.0.1", Node: testNode}),
	}
	plan := Render(snapshotOf(t, objects...), cfg, nil)
	want := map[string][]string{
		ChainPostrouting: {
			"-m mark ! --mark 0x8/0x8 -j RETURN",
			"-j MARK --xor-mark 0x8",
			`-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
		},
		ChainMarkMasq: {"-j MARK --or-mark 0x8"},
	}
	for chain, rules := range want {
		if diff := cmp.Diff(rules, chainRules(plan.Payload, chain)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", chain, diff)
		}
	}
	if got := chainRules(plan.Payload, ChainForward); !strings.Contains(strings.Join(got, "\n"), "--mark 0x8/0x8 -j ACCEPT") {
		t.Errorf("KUBE-FORWARD does not accept mark 0x8:\n%s", strings.Join(got, "\n"))
	}
	if strings.Contains(string(plan.Payload), "0x4000") {
		t.Error("the default mark 0x4000 is still written")
	}
	rs := programmed(t, cfg, objects...)
	n := tracer.Node{LocalAddrs: []netip.Addr{netip.MustParseAddr(nodeIPv4)}}
	runPacketCases(t, rs, n, []packetCase{
		{name: "outsider masqueraded with mark 0x8", src: outsideSrc, dst: "172.30.0.10", port: 80, wantEndpoints: []string{"10.180.0.1:80"}, wantMasq: []string{"10.180.0.1:80"}},
		{name: "pod not masqueraded", src: podSrc, dst: "172.30.0.10", port: 80, wantEndpoints: []string{"10.180.0.1:80"}},
	})
}

// TestInvalidDropRule checks the ctstate INVALID drop rule is written unless conntrack
// is liberal (kubernetes PR 120412). mutation-checked: writing it unconditionally fails
// the "liberal" row.
func TestInvalidDropRule(t *testing.T) {
	for _, liberal := range []bool{false, true} {
		cfg := testConfig()
		cfg.ConntrackTCPLiberal = liberal
		plan := Render(snapshotOf(t), cfg, nil)
		got := chainRules(plan.Payload, ChainForward)
		want := []string{
			`-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT`,
			`-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
		}
		if !liberal {
			want = append([]string{"-m conntrack --ctstate INVALID -j DROP"}, want...)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("liberal=%v: KUBE-FORWARD (-want +got):\n%s", liberal, diff)
		}
	}
}

// TestEndpointOrder pins kube-proxy's order of a KUBE-SVC chain's endpoints: by their
// "ip:port" text, so 10.180.0.10 comes before 10.180.0.9 (and after 10.180.0.100) and the affinity checks try
// it first. mutation-checked: sorting endpoints by AddrPort.Compare in
// pkg/endpoints (mergeEndpoints) fails this test.
func TestEndpointOrder(t *testing.T) {
	svc := makeService("ns", "web", "172.30.0.10", func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(600))}}
	})
	slice := makeSlice("ns", "web", "web-1", 80,
		ep{IP: "10.180.0.9", Node: testNode}, ep{IP: "10.180.0.10", Node: testNode}, ep{IP: "10.180.0.100", Node: testNode}, ep{IP: "10.180.0.2", Node: testNode})
	plan := Render(snapshotOf(t, svc, slice), testConfig(), nil)
	name := endpoints.ServicePortName{NamespacedName: nsName("ns", "web"), Port: "p80", Protocol: v1.ProtocolTCP}
	var order []string
	for _, r := range chainRules(plan.Payload, ServiceChain(name)) {
		if strings.Contains(r, "--rcheck") {
			_, after, _ := strings.Cut(r, `-> `)
			order = append(order, strings.Fields(after)[0])
		}
	}
	// "10.180.0.100:80" sorts before "10.180.0.10:80": '0' < ':'.
	want := []string{`10.180.0.100:80"`, `10.180.0.10:80"`, `10.180.0.2:80"`, `10.180.0.9:80"`}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("endpoint order in %s (-want +got):\n%s", ServiceChain(name), diff)
	}
}

// TestExternalReachabilityPerFamily pins what the randomised testbed differential
// found: kube-proxy decides whether a port is externally reachable per family, so a
// dual-stack service whose only external IP is IPv4 has no KUBE-EXT chain in
// ip6tables, and with internalTrafficPolicy Local no KUBE-SVC chain either.
// mutation-checked: dropping the port.OfFamily call in writeService fails this test.
func TestExternalReachabilityPerFamily(t *testing.T) {
	svc := makeService("ns", "dual", "172.30.0.40", func(s *v1.Service) {
		s.Spec.ClusterIPs = []string{"172.30.0.40", "fd00:30::40"}
		s.Spec.ExternalIPs = []string{"203.0.113.40"}
		s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	})
	objects := []any{svc,
		makeSlice("ns", "dual", "dual-v4", 80, ep{IP: "10.180.1.40", Node: otherNode}),
		makeSlice("ns", "dual", "dual-v6", 80, ep{IP: "fd00:10::40", Node: otherNode}),
	}
	name := endpoints.ServicePortName{NamespacedName: nsName("ns", "dual"), Port: "p80", Protocol: v1.ProtocolTCP}
	v6 := testConfig()
	v6.Family = v1.IPv6Protocol
	v6.NodeIPs = []netip.Addr{netip.MustParseAddr(testNodeIPv6)}
	v6.Local = node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("fd00:10::/64"))
	for _, tt := range []struct {
		cfg              *Config
		wantEXT, wantSVC bool
	}{{testConfig(), true, true}, {v6, false, false}} {
		payload := string(Render(snapshotOf(t, objects...), tt.cfg, nil).Payload)
		if got := strings.Contains(payload, ":"+ExternalChain(name)+" "); got != tt.wantEXT {
			t.Errorf("%s: KUBE-EXT chain declared = %v, want %v", tt.cfg.Family, got, tt.wantEXT)
		}
		if got := strings.Contains(payload, ":"+ServiceChain(name)+" "); got != tt.wantSVC {
			t.Errorf("%s: KUBE-SVC chain declared = %v, want %v", tt.cfg.Family, got, tt.wantSVC)
		}
	}
}
