package explain

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/manifest"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// IP plan (manifests/examples/):
//   cluster CIDR   10.244.0.0/16; node-a's pods 10.244.1.0/24, node-b's 10.244.2.0/24
//   service CIDR   10.96.0.0/16
//   node-a         192.168.10.11 (the node rendered for, unless a test says otherwise)
//   outside        192.0.2.99 (not in any source range), 203.0.113.5 (in storefront's range)
//   shop/web:http        10.96.10.10:80 -> 10.244.1.5:8080 (node-a), 10.244.2.7:8080 (node-b)
//   shop/api:https       10.96.20.20:443, node port 30443, ClientIP affinity 600 s
//   shop/storefront:https 10.96.30.30:443, LB 198.51.100.20 from 203.0.113.0/24, node port
//                        31443, externalTrafficPolicy Local: 10.244.1.30 (node-a), 10.244.2.30 (node-b)
//   shop/legacy:http     10.96.50.50:80, no endpoints
//   monitoring/metrics   10.96.40.40:9090, external IP 192.0.2.50 -> 10.244.2.40:9090

const examplesDir = "../../manifests/examples/"

// examplesInput renders the examples for nodeName (node-a from its Node object,
// any other name with the address 192.168.10.99), as the daemon would, and
// returns the resulting IPv4 tables.
func examplesInput(t *testing.T, nodeName string, masqueradeAll bool) IPTablesInput {
	t.Helper()
	return renderWorld(t, examplesDir, nodeName, v1.IPv4Protocol, node.Options{
		ClusterCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		MasqueradeAll: masqueradeAll,
		MasqueradeBit: 14,
	})
}

// renderWorld renders the manifests in dir for nodeName and family with opts.
func renderWorld(t *testing.T, dir, nodeName string, family v1.IPFamily, opts node.Options) IPTablesInput {
	t.Helper()
	objs, errs := manifest.Read([]string{dir})
	for _, err := range errs {
		t.Logf("reading %s: %v", dir, err)
	}
	facts := node.Facts{Name: nodeName, IPs: []netip.Addr{netip.MustParseAddr("192.168.10.99")}}
	for _, n := range objs.Nodes {
		if n.Name == nodeName {
			var err error
			if facts, err = node.FromNode(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	tracker := endpoints.NewTracker(facts.Name)
	for _, svc := range objs.Services {
		if err := tracker.OnServiceUpdate(svc); err != nil {
			t.Fatal(err)
		}
	}
	for _, slice := range objs.EndpointSlices {
		if err := tracker.OnEndpointSliceUpdate(slice); err != nil {
			t.Fatal(err)
		}
	}
	snap := tracker.Snapshot()
	cfg := &iptables.Config{FamilyConfig: node.FamilyConfigs(facts, []v1.IPFamily{family}, opts)[0]}
	plan := iptables.Render(snap, cfg, nil)
	rulesFamily := ruleset.IPv4
	if family == v1.IPv6Protocol {
		rulesFamily = ruleset.IPv6
	}
	rs, err := RulesFromPayload(rulesFamily, iptables.Hooks(cfg), plan.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return IPTablesInput{Rules: rs, NodeAddrs: facts.IPsOf(family), NodeName: facts.Name,
		Owners: OwnersFromSlices(objs.EndpointSlices), Snapshot: snap}
}

func pkt(from From, src, dst, proto string) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddrPort(dst), Proto: proto, From: from}
}

// epSummary is what a test asserts about an endpoint.
type epSummary struct {
	Addr       string
	Percent    int
	Local      bool
	Masquerade bool
}

func summarise(eps []Endpoint) []epSummary {
	var out []epSummary
	for _, ep := range eps {
		out = append(out, epSummary{ep.Address.String(), int(math.Round(ep.Probability * 100)), ep.Local, ep.Masquerade})
	}
	return out
}

// TestIPTablesExamples explains packets through the examples' rules.
//
// Mutation-checked (each fails the rows named):
//   - kindOfRejected returning ExternalIP for KUBE-SERVICES: "no endpoints: reject".
//   - serviceOfHit without the nat KUBE-NODEPORTS case: both node-port rows.
//   - masqRuleWords without the "masquerade traffic for" case: "node port: ...", "external IP".
//   - markReason looking for jumps to KUBE-POSTROUTING instead of KUBE-MARK-MASQ: every masqueraded row.
//   - affinityOf with isPolicyChain negated: "affinity on the cluster IP", "node port: ...".
//   - notAServiceReason ignoring clusterIPOwners: "unknown port on a cluster IP".
//   - endpoints() counting accepted outcomes without a DNAT: both not-a-service rows.
//   - masqRuleWords testing !s.Negate for the cluster-CIDR rule: "cluster IP from the node".
//     Summing probabilities with = instead of += survives: each endpoint is one
//     outcome when no affinity entry is assumed.
func TestIPTablesExamples(t *testing.T) {
	nodeA := examplesInput(t, "node-a", false)
	nodeZ := examplesInput(t, "node-z", false)
	masqAll := examplesInput(t, "node-a", true)
	tests := []struct {
		name        string
		in          IPTablesInput
		pkt         Packet
		wantService *Service
		wantEPs     []epSummary
		wantVerdict Verdict
		wantMasq    bool
		// wantReason and wantMasqReason are substrings.
		wantReason, wantMasqReason string
		wantAffinity               int
		// wantSteps are substrings of the steps' "where: what", in order.
		wantSteps []string
	}{
		{
			name: "cluster IP from a pod: two endpoints at 1/2", in: nodeA,
			pkt:         pkt(FromPod, "10.244.1.99", "10.96.10.10:80", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "web", Port: "http", Kind: ClusterIP},
			wantEPs:     []epSummary{{"10.244.1.5:8080", 50, true, false}, {"10.244.2.7:8080", 50, false, false}},
			wantVerdict: Delivered, wantReason: "one of 2 endpoints", wantMasqReason: "client's own address 10.244.1.99",
			wantSteps: []string{
				"nat/PREROUTING: Hands the packet to kube-proxy's KUBE-SERVICES chain",
				"nat/KUBE-SERVICES: 10.96.10.10 is the cluster IP of shop/web:http (tcp port 80)",
				"nat/KUBE-SVC-67NZLRHBNDSAWJRO: Picks one of 2 endpoints at random; this path follows 10.244.1.5:8080",
				"nat/KUBE-SEP-34ZZ2QFGO32YYXXO: Rewrites the destination to the endpoint 10.244.1.5:8080 (DNAT)",
				"nat/KUBE-POSTROUTING: The packet carries no masquerade mark",
			},
		},
		{
			name: "cluster IP from the node: masqueraded, outside the cluster CIDR", in: nodeA,
			pkt:         pkt(FromNode, "192.168.10.11", "10.96.0.10:53", "udp"),
			wantService: &Service{Namespace: "kube-system", Name: "dns", Port: "dns", Kind: ClusterIP},
			wantEPs:     []epSummary{{"10.244.1.53:53", 50, true, true}, {"10.244.2.53:53", 50, false, true}},
			wantVerdict: Delivered, wantMasq: true, wantMasqReason: "the source 192.168.10.11 is outside the cluster CIDR 10.244.0.0/16",
			wantSteps: []string{"nat/OUTPUT: Hands the packet", "because the source 192.168.10.11 is outside",
				"nat/KUBE-POSTROUTING: The packet carries the masquerade mark"},
		},
		{
			name: "masquerade-all", in: masqAll,
			pkt:         pkt(FromPod, "10.244.1.99", "10.96.10.10:80", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "web", Port: "http", Kind: ClusterIP},
			wantEPs:     []epSummary{{"10.244.1.5:8080", 50, true, true}, {"10.244.2.7:8080", 50, false, true}},
			wantVerdict: Delivered, wantMasq: true, wantMasqReason: "masquerade-all is set",
		},
		{
			name: "hairpin: a pod reaching itself is masqueraded on that path only", in: nodeA,
			pkt:         pkt(FromPod, "10.244.1.5", "10.96.10.10:80", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "web", Port: "http", Kind: ClusterIP},
			wantEPs:     []epSummary{{"10.244.1.5:8080", 50, true, true}, {"10.244.2.7:8080", 50, false, false}},
			wantVerdict: Delivered, wantMasq: true, wantMasqReason: "only on the way to 10.244.1.5:8080: the source 10.244.1.5 is this endpoint itself (hairpin)",
		},
		{
			name: "no endpoints: reject", in: nodeA,
			pkt:         pkt(FromPod, "10.244.1.99", "10.96.50.50:80", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "legacy", Port: "http", Kind: ClusterIP},
			wantVerdict: Rejected, wantReason: "shop/legacy:http has no endpoints (no ready pod backs it), so the connection is rejected",
			wantSteps: []string{"filter/KUBE-SERVICES: Rejects the packet: shop/legacy:http has no endpoints"},
		},
		{
			name: "load balancer: source outside loadBalancerSourceRanges is dropped", in: nodeA,
			pkt:         pkt(FromOutside, "192.0.2.99", "198.51.100.20:443", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "storefront", Port: "https", Kind: LoadBalancerIP},
			wantVerdict: Dropped, wantReason: "the source 192.0.2.99 is not in shop/storefront:https's loadBalancerSourceRanges",
			wantSteps: []string{"nat/KUBE-FW-Q3GZAQWEYVX6RMSR: The source 192.0.2.99 is in none of the load balancer's allowed ranges",
				"filter/KUBE-PROXY-FIREWALL: Drops the packet: the source 192.0.2.99 is not in"},
		},
		{
			name: "load balancer: allowed source, Local policy keeps the client address", in: nodeA,
			pkt:         pkt(FromOutside, "203.0.113.5", "198.51.100.20:443", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "storefront", Port: "https", Kind: LoadBalancerIP},
			wantEPs:     []epSummary{{"10.244.1.30:8443", 100, true, false}},
			wantVerdict: Delivered, wantReason: "sent to 10.244.1.30:8443, the only endpoint",
			wantSteps: []string{"within 203.0.113.0/24", "externalTrafficPolicy is Local", "Sends the packet to 10.244.1.30:8443, the only endpoint on this node"},
		},
		{
			name: "local policy with no local endpoint: node port dropped", in: nodeZ,
			pkt:         pkt(FromOutside, "192.0.2.99", "192.168.10.99:31443", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "storefront", Port: "https", Kind: NodePort},
			wantVerdict: Dropped, wantReason: "shop/storefront:https has no endpoints on this node and its traffic policy is Local",
		},
		{
			name: "local policy, no local endpoint, but from a pod: all endpoints", in: nodeZ,
			pkt:         pkt(FromPod, "10.244.9.9", "192.168.10.99:31443", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "storefront", Port: "https", Kind: NodePort},
			wantEPs:     []epSummary{{"10.244.1.30:8443", 50, false, false}, {"10.244.2.30:8443", 50, false, false}},
			wantVerdict: Delivered, wantSteps: []string{"nat/KUBE-EXT-Q3GZAQWEYVX6RMSR: The packet comes from a pod, so it goes to all of the Service's endpoints"},
		},
		{
			name: "load balancer from a pod outside the source ranges: dropped like any client", in: nodeZ,
			pkt:         pkt(FromPod, "10.244.9.9", "198.51.100.20:443", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "storefront", Port: "https", Kind: LoadBalancerIP},
			wantVerdict: Dropped, wantReason: "not in shop/storefront:https's loadBalancerSourceRanges",
		},
		{
			name: "node port: masquerade reason is the Cluster policy", in: nodeA,
			pkt:         pkt(FromOutside, "192.0.2.99", "192.168.10.11:30443", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "api", Port: "https", Kind: NodePort},
			wantEPs:     []epSummary{{"10.244.1.20:8443", 50, true, true}, {"10.244.2.20:8443", 50, false, true}},
			wantVerdict: Delivered, wantMasq: true, wantAffinity: 600,
			wantMasqReason: "externalTrafficPolicy is Cluster",
			wantSteps: []string{"is one of this node's own addresses, so kube-proxy looks for a node port",
				"nat/KUBE-NODEPORTS: TCP port 30443 is the node port of shop/api:https"},
		},
		{
			name: "affinity on the cluster IP", in: nodeA,
			pkt:         pkt(FromPod, "10.244.1.99", "10.96.20.20:443", "tcp"),
			wantService: &Service{Namespace: "shop", Name: "api", Port: "https", Kind: ClusterIP},
			wantEPs:     []epSummary{{"10.244.1.20:8443", 50, true, false}, {"10.244.2.20:8443", 50, false, false}},
			wantVerdict: Delivered, wantAffinity: 600,
		},
		{
			name: "external IP", in: nodeA,
			pkt:         pkt(FromOutside, "192.0.2.99", "192.0.2.50:9090", "tcp"),
			wantService: &Service{Namespace: "monitoring", Name: "metrics", Kind: ExternalIP},
			wantEPs:     []epSummary{{"10.244.2.40:9090", 100, false, true}},
			wantVerdict: Delivered, wantMasq: true, wantMasqReason: "externalTrafficPolicy is Cluster",
		},
		{
			name: "unknown port on a cluster IP", in: nodeA,
			pkt:         pkt(FromPod, "10.244.1.99", "10.96.10.10:81", "tcp"),
			wantVerdict: NotAService, wantReason: "10.96.10.10 is the cluster IP of shop/web, which has no tcp port 81",
		},
		{
			name: "not a service", in: nodeA,
			pkt:         pkt(FromPod, "10.244.1.99", "8.8.8.8:53", "udp"),
			wantVerdict: NotAService, wantReason: "no Service has udp port 53 at 8.8.8.8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := IPTables(tt.in, tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			_ = e.WriteText(&text)
			t.Logf("explanation:\n%s", text.String())
			if diff := cmp.Diff(tt.wantService, e.Service); diff != "" {
				t.Errorf("service (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEPs, summarise(e.Endpoints)); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if e.Verdict != tt.wantVerdict || !strings.Contains(e.Reason, tt.wantReason) {
				t.Errorf("verdict %s (%s), want %s (%s)", e.Verdict, e.Reason, tt.wantVerdict, tt.wantReason)
			}
			if e.Masquerade != tt.wantMasq || !strings.Contains(e.MasqueradeReason, tt.wantMasqReason) {
				t.Errorf("masquerade %v (%s), want %v (%s)", e.Masquerade, e.MasqueradeReason, tt.wantMasq, tt.wantMasqReason)
			}
			gotAffinity := 0
			if e.Affinity != nil {
				gotAffinity = e.Affinity.TimeoutSeconds
			}
			if gotAffinity != tt.wantAffinity {
				t.Errorf("affinity %d s, want %d s", gotAffinity, tt.wantAffinity)
			}
			next := 0
			for _, s := range e.Steps {
				if next < len(tt.wantSteps) && strings.Contains(s.Where+": "+s.What, tt.wantSteps[next]) {
					next++
				}
			}
			if next < len(tt.wantSteps) {
				t.Errorf("steps lack %q (in order)", tt.wantSteps[next])
			}
			if want := map[Verdict]int{Delivered: 0, NotAService: 0, Dropped: 1, Rejected: 1}[tt.wantVerdict]; e.ExitCode() != want {
				t.Errorf("exit code %d, want %d", e.ExitCode(), want)
			}
		})
	}
}

// TestIPTablesBuiltWorld covers what the examples do not: the kind of address of
// a Service left with only a reject rule, Local policies with no local endpoint,
// interface-based local detection, pods named from targetRefs, and IPv6. See
// testdata/world.yaml for the plan.
//
// Mutation-checked: kindFromSnapshot never finding the LB VIP fails "load
// balancer without endpoints"; OwnersFromSlices ignoring TargetRef, or not
// defaulting its namespace to the slice's, fails "pods named" and "IPv6";
// masqRuleWords without the InIface case fails "bridge detection".
func TestIPTablesBuiltWorld(t *testing.T) {
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/32")}
	v4 := renderWorld(t, "testdata", "node-a", v1.IPv4Protocol, node.Options{ClusterCIDRs: cidrs, MasqueradeBit: 14})
	v4NoObjects := v4
	v4NoObjects.Snapshot, v4NoObjects.Owners = nil, nil
	v6 := renderWorld(t, "testdata", "node-a", v1.IPv6Protocol, node.Options{ClusterCIDRs: cidrs, MasqueradeBit: 14})
	bridge := renderWorld(t, "testdata", "node-a", v1.IPv4Protocol, node.Options{DetectLocalMode: node.LocalModeBridgeInterface, BridgeInterface: "cbr0", MasqueradeBit: 14})
	bridgePod := bridge
	bridgePod.PodInterface = "cbr0"
	tests := []struct {
		name        string
		in          IPTablesInput
		pkt         Packet
		wantService *Service
		wantVerdict Verdict
		wantReason  string
		wantPods    []string // "address pod node local masquerade"
		wantMasq    string
	}{
		{name: "load balancer without endpoints: the objects say it is the LB IP", in: v4,
			pkt:         pkt(FromOutside, "192.0.2.9", "198.51.100.60:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "gone", Port: "http", Kind: LoadBalancerIP},
			wantVerdict: Rejected, wantReason: "w/gone:http has no endpoints"},
		{name: "load balancer without endpoints, no objects: called an external IP", in: v4NoObjects,
			pkt:         pkt(FromOutside, "192.0.2.9", "198.51.100.60:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "gone", Port: "http", Kind: ExternalIP},
			wantVerdict: Rejected, wantReason: "w/gone:http has no endpoints"},
		{name: "node port without endpoints", in: v4NoObjects,
			pkt:         pkt(FromOutside, "192.0.2.9", "192.168.10.11:30660", "tcp"),
			wantService: &Service{Namespace: "w", Name: "gone", Port: "http", Kind: NodePort},
			wantVerdict: Rejected, wantReason: "w/gone:http has no endpoints"},
		{name: "external IP, Local policy, no local endpoint: dropped", in: v4,
			pkt:         pkt(FromOutside, "192.0.2.9", "192.0.2.61:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "remote", Port: "http", Kind: ExternalIP},
			wantVerdict: Dropped, wantReason: "w/remote:http has no endpoints on this node and its traffic policy is Local"},
		{name: "internal Local policy, no local endpoint: dropped", in: v4,
			pkt:         pkt(FromPod, "10.244.1.9", "10.96.61.61:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "remote", Port: "http", Kind: ClusterIP},
			wantVerdict: Dropped, wantReason: "has no endpoints on this node"},
		{name: "pods named from targetRefs", in: v4,
			pkt:         pkt(FromPod, "10.244.1.9", "10.96.62.62:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "named", Port: "http", Kind: ClusterIP},
			wantVerdict: Delivered, wantReason: "one of 3 endpoints",
			wantPods: []string{"10.244.1.62:8080 w/named-a node-a true false 33", "10.244.2.62:8080 w/named-b node-b false false 33",
				"10.244.2.63:8080 w/named-c node-b false false 33"}},
		{name: "IPv6", in: v6,
			pkt:         pkt(FromPod, "fd00:244:1::9", "[fd00:96::62]:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "named", Port: "http", Kind: ClusterIP},
			wantVerdict: Delivered, wantPods: []string{"[fd00:244:1::62]:8080 w/named-a node-a true false 100"}},
		{name: "bridge detection: a packet from another interface is masqueraded", in: bridge,
			pkt:         pkt(FromPod, "10.244.1.9", "10.96.62.62:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "named", Port: "http", Kind: ClusterIP},
			wantVerdict: Delivered, wantMasq: "did not arrive on a pod interface (cbr0)"},
		{name: "bridge detection: from the bridge, kept", in: bridgePod,
			pkt:         pkt(FromPod, "10.244.1.9", "10.96.62.62:80", "tcp"),
			wantService: &Service{Namespace: "w", Name: "named", Port: "http", Kind: ClusterIP},
			wantVerdict: Delivered, wantMasq: "the endpoint sees the client's own address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := IPTables(tt.in, tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			_ = e.WriteText(&text)
			t.Logf("explanation:\n%s", text.String())
			if diff := cmp.Diff(tt.wantService, e.Service); diff != "" {
				t.Errorf("service (-want +got):\n%s", diff)
			}
			if e.Verdict != tt.wantVerdict || !strings.Contains(e.Reason, tt.wantReason) {
				t.Errorf("verdict %s (%s), want %s (%s)", e.Verdict, e.Reason, tt.wantVerdict, tt.wantReason)
			}
			if !strings.Contains(e.MasqueradeReason, tt.wantMasq) {
				t.Errorf("masquerade reason %q lacks %q", e.MasqueradeReason, tt.wantMasq)
			}
			if tt.wantPods != nil {
				var got []string
				for _, ep := range e.Endpoints {
					got = append(got, fmt.Sprintf("%s %s %s %v %v %d", ep.Address, ep.Pod, ep.Node, ep.Local, ep.Masquerade, int(math.Round(ep.Probability*100))))
				}
				if diff := cmp.Diff(tt.wantPods, got); diff != "" {
					t.Errorf("endpoints (-want +got):\n%s", diff)
				}
			}
		})
	}
}
