package explain

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// IP plan of kube-proxy's fixture tables (pkg/nftables/nftmodel/testdata, the real
// tables of the pinned kube-proxy v1.37.2 on the testbed's node-1; full plan in
// nftmodel's fixtures_test.go): node-1 10.250.0.11 / fd00:250::11 (node ports) and
// 10.251.0.11 / fd00:251::11, pod bridge 10.244.1.1. Cluster CIDR 10.244.0.0/16; a
// client pod 10.244.1.99, an outside client 10.251.0.100. Cluster IPs 10.96.1.1 (web,
// 3 endpoints), .2 nodeport (30080), .3 local (eTP Local, 30081), .4 local-remote
// (eTP Local, no local endpoint, 30082), .5 lb (10.252.0.20, source range the outside
// client), .6 lb-denied (10.252.0.21), .7 external (10.252.0.10), .8 affinity (1m), .9
// itp-local (no local endpoint), .10 empty, .12 empty-nodeport (30085), .13 lb-local.

var fixtureNode = []netip.Addr{
	netip.MustParseAddr("10.250.0.11"), netip.MustParseAddr("10.251.0.11"), netip.MustParseAddr("10.244.1.1"),
	netip.MustParseAddr("fd00:250::11"), netip.MustParseAddr("fd00:251::11"), netip.MustParseAddr("fd00:244:1::1"),
}

func loadKubeProxyFixture(t *testing.T, family string) *nftmodel.Ruleset {
	t.Helper()
	text, err := os.ReadFile("../nftables/nftmodel/testdata/kube-proxy-" + family + ".nft")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := nftmodel.Parse(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestNFTablesAgreesWithKubeProxy explains packets through kube-proxy's own tables
// and checks the answer against nftmodel's trace of the same packet through the same
// table: the verdict matches the fates, the endpoints and their chances the accepted
// outcomes, masquerading each outcome's; and the Service and the words are the ones
// a reader looks for. No step may fall back to quoting the rule ("Matches:"): every
// rule of kube-proxy's on these paths is worded.
//
// Mutation-checked (each fails the rows named):
//   - verdict() mapping nftmodel.Reject to Dropped: every REJECT row.
//   - endpoints() with = instead of += for the chances survives: each endpoint is one
//     outcome when every affinity set is empty.
//   - kindOfRejected returning ClusterIP for nodeport-endpoints-check: "no endpoints, node port".
//   - refusalCause not following reject-chain back to the map lookup: "no endpoints".
//   - refusalCause treating a drop verdict in the no-endpoint maps as "has no
//     endpoints": "eTP Local node port, no local endpoint".
//   - serviceOfHit ignoring @service-nodeports (kind from the chain prefix): "node port from outside".
//   - masqReason without the hairpin-connections case: "hairpin".
//   - affinityOf reading any set (not only @affinity-): none; nftTimeoutSeconds
//     parsing "1m" as 1: "affinity".
func TestNFTablesAgreesWithKubeProxy(t *testing.T) {
	ip4, ip6 := loadKubeProxyFixture(t, "ip"), loadKubeProxyFixture(t, "ip6")
	tests := []struct {
		name        string
		pkt         Packet
		wantVerdict Verdict
		wantService string // "ns/name:port kind"
		want        []string
	}{
		{"pod to cluster IP", pkt(FromPod, "10.244.1.99", "10.96.1.1:80", "tcp"), Delivered, "nft/web:http cluster-ip",
			[]string{"Picks one of 3 endpoints at random"}},
		{"hairpin", pkt(FromPod, "10.244.1.2", "10.96.1.1:53", "udp"), Delivered, "nft/web:dns cluster-ip",
			[]string{"Masquerade: yes: only on the way to 10.244.1.2:53: the source 10.244.1.2 is the endpoint itself (hairpin)"}},
		{"node to cluster IP", pkt(FromNode, "10.250.0.11", "10.96.1.1:80", "tcp"), Delivered, "nft/web:http cluster-ip",
			[]string{"outside the cluster CIDR 10.244.0.0/16"}},
		{"cluster IP, port not served", pkt(FromPod, "10.244.1.99", "10.96.1.1:81", "tcp"), Rejected, "",
			[]string{"10.96.1.1 is a cluster IP, but no Service serves tcp port 81 on it"}},
		{"unallocated cluster IP", pkt(FromPod, "10.244.1.99", "10.96.1.200:80", "tcp"), Dropped, "",
			[]string{"is no Service's cluster IP"}},
		{"node port from outside", pkt(FromOutside, "10.251.0.100", "10.250.0.11:30080", "tcp"), Delivered, "nft/nodeport:http node-port",
			[]string{"externalTrafficPolicy is Cluster"}},
		{"eTP Local node port from outside", pkt(FromOutside, "10.251.0.100", "10.250.0.11:30081", "tcp"), Delivered, "nft/local:http node-port",
			[]string{"externalTrafficPolicy is Local", "Masquerade: no"}},
		{"eTP Local node port, no local endpoint", pkt(FromOutside, "10.251.0.100", "10.250.0.11:30082", "tcp"), Dropped, "nft/local-remote:http node-port",
			[]string{"has no endpoints on this node and its traffic policy is Local"}},
		{"eTP Local, no local endpoint, from pod", pkt(FromPod, "10.244.1.99", "10.250.0.11:30082", "tcp"), Delivered, "nft/local-remote:http node-port",
			[]string{"The packet comes from a pod"}},
		{"lb, source allowed", pkt(FromOutside, "10.251.0.100", "10.252.0.20:80", "tcp"), Delivered, "nft/lb:http load-balancer-ip",
			[]string{"the source 10.251.0.100 is within them: allowed"}},
		{"lb, other source", pkt(FromOutside, "10.251.0.101", "10.252.0.20:80", "tcp"), Dropped, "nft/lb:http load-balancer-ip",
			[]string{"the source 10.251.0.101 is not in nft/lb:http's loadBalancerSourceRanges"}},
		{"external IP", pkt(FromOutside, "10.251.0.100", "10.252.0.10:80", "tcp"), Delivered, "nft/external:http external-ip", nil},
		{"affinity", pkt(FromPod, "10.244.1.99", "10.96.1.8:80", "tcp"), Delivered, "nft/affinity:http cluster-ip",
			[]string{"within the last 60 s"}},
		{"iTP Local, no local endpoint", pkt(FromPod, "10.244.1.99", "10.96.1.9:80", "tcp"), Dropped, "nft/itp-local:http cluster-ip",
			[]string{"traffic policy is Local"}},
		{"no endpoints", pkt(FromPod, "10.244.1.99", "10.96.1.10:80", "tcp"), Rejected, "nft/empty:http cluster-ip",
			[]string{"Verdict:    rejected: nft/empty:http has no endpoints"}},
		{"no endpoints, node port", pkt(FromOutside, "10.251.0.100", "10.250.0.11:30085", "tcp"), Rejected, "nft/empty-nodeport:http node-port",
			[]string{"has no endpoints"}},
		{"IPv6 cluster IP", pkt(FromPod, "fd00:244:1::99", "[fd00:96::101]:80", "tcp"), Delivered, "nft/web:http cluster-ip", nil},
		{"IPv6 no endpoints", pkt(FromPod, "fd00:244:1::99", "[fd00:96::10a]:80", "tcp"), Rejected, "nft/empty:http cluster-ip", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := ip4
			if tt.pkt.Dst.Addr().Is6() {
				rs = ip6
			}
			in := NFTablesInput{Rules: rs, NodeAddrs: fixtureNode}
			e, err := NFTables(in, tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			if err := e.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if e.Verdict != tt.wantVerdict {
				t.Errorf("verdict %s, want %s:\n%s", e.Verdict, tt.wantVerdict, text.String())
			}
			gotService := ""
			if e.Service != nil {
				gotService = e.Service.String() + " " + string(e.Service.Kind)
			}
			if gotService != tt.wantService {
				t.Errorf("service %q, want %q", gotService, tt.wantService)
			}
			for _, w := range tt.want {
				if !strings.Contains(text.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, text.String())
				}
			}
			for _, s := range e.Steps {
				if strings.HasPrefix(s.What, "Matches:") {
					t.Errorf("step %s is not worded: %s", s.Where, s.What)
				}
			}

			// The same packet, traced by nftmodel alone.
			origin := nftmodel.FromPodOrExternal
			if tt.pkt.From == FromNode {
				origin = nftmodel.FromLocalProcess
			}
			res, err := nftmodel.Trace(rs, nftmodel.Node{LocalAddrs: fixtureNode}, nftmodel.Packet{Src: tt.pkt.Src, Dst: tt.pkt.Dst.Addr(),
				Proto: tt.pkt.Proto, SrcPort: 40000, DstPort: int(tt.pkt.Dst.Port()), Origin: origin}, nftmodel.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(traceSummary(res), explanationSummary(e)); diff != "" {
				t.Errorf("explain disagrees with nftmodel's trace (-trace +explain):\n%s", diff)
			}
		})
	}
}

// traceSummary is what a trace says about a packet, in explain's terms: the
// verdict, then "endpoint percent [masq]" per endpoint.
func traceSummary(res nftmodel.Result) []string {
	fates := res.Fates()
	verdict := map[nftmodel.Fate]Verdict{nftmodel.Drop: Dropped, nftmodel.Reject: Rejected}[fates[0]]
	if fates[0] == nftmodel.Accept {
		verdict = NotAService
		if len(res.Endpoints) > 0 {
			verdict = Delivered
		}
	}
	out := []string{string(verdict)}
	chance, masq := map[string]float64{}, map[string]bool{}
	for _, o := range res.Outcomes {
		if o.Fate == nftmodel.Accept && o.Endpoint != "" {
			chance[o.Endpoint] += o.Probability
			masq[o.Endpoint] = masq[o.Endpoint] || o.Masquerade
		}
	}
	for _, ep := range res.Endpoints {
		out = append(out, epLine(ep, chance[ep], masq[ep]))
	}
	return out
}

func explanationSummary(e *Explanation) []string {
	out := []string{string(e.Verdict)}
	for _, ep := range e.Endpoints {
		out = append(out, epLine(ep.Address.String(), ep.Probability, ep.Masquerade))
	}
	return out
}

func epLine(ep string, p float64, masq bool) string {
	s := fmt.Sprintf("%s %.1f%%", ep, p*100)
	if masq {
		s += " masq"
	}
	return s
}
