package nftkernel

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// TestSameVerdictsAsKubeProxy needs no root: it traces a grid of new connections
// (from a pod, a pod that is an endpoint, the node and the outside client, to every
// cluster, external and load-balancer IP and node port of the world, on served and
// unserved ports, tcp and udp) through kube-proxy's real tables and through
// Switchyard's render of the same world (knftables.Fake's dump), with nftmodel, and
// requires the same outcomes: endpoints, probabilities, masquerading, drops and
// rejects.
//
// mutation-checked: leaving out the "masquerade local traffic" rule of Local-policy
// external chains makes 4 packets differ (the node's own connections to those node
// ports and load-balancer IPs).
func TestSameVerdictsAsKubeProxy(t *testing.T) {
	snap := kubeProxyWorld(t)
	node := nftmodel.Node{LocalAddrs: addrList("10.250.0.11", "10.251.0.11", "10.244.1.1", "fd00:250::11", "fd00:251::11", "fd00:244:1::1")}
	for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		t.Run(string(family), func(t *testing.T) {
			cfg := node1Config(family)
			nftFamily := string(cfg.NFTFamily())
			text, err := os.ReadFile(fmt.Sprintf("../../pkg/nftables/nftmodel/testdata/kube-proxy-%s.nft", nftFamily))
			if err != nil {
				t.Fatal(err)
			}
			kubeProxy, err := nftmodel.Parse(string(text))
			if err != nil {
				t.Fatal(err)
			}
			fake := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
			if err := nftables.Apply(t.Context(), fake, nftables.Render(fake.NewTransaction, snap, cfg, nftables.EmptyKernel())); err != nil {
				t.Fatal(err)
			}
			switchyard, err := nftmodel.Parse(fake.Dump())
			if err != nil {
				t.Fatal(err)
			}
			packets := verdictGrid(family)
			for _, pkt := range packets {
				want := outcomes(t, kubeProxy, node, pkt)
				got := outcomes(t, switchyard, node, pkt)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s (-kube-proxy +switchyard):\n%s", pkt, diff)
				}
			}
			t.Logf("%d packets traced", len(packets))
		})
	}
}

// verdictGrid is every client against every destination of the world, in one family.
func verdictGrid(family v1.IPFamily) []nftmodel.Packet {
	type client struct {
		src, iface string
		origin     nftmodel.Origin
	}
	clients := []client{
		{"10.244.1.99", "sy-br", nftmodel.FromPodOrExternal}, {"10.244.1.2", "sy-br", nftmodel.FromPodOrExternal},
		{"10.250.0.11", "", nftmodel.FromLocalProcess}, {"10.251.0.100", "sy-outside", nftmodel.FromPodOrExternal},
		{"10.251.0.101", "sy-outside", nftmodel.FromPodOrExternal},
	}
	var dsts []string
	for i := 1; i <= 13; i++ {
		dsts = append(dsts, fmt.Sprintf("10.96.1.%d", i))
	}
	dsts = append(dsts, "10.96.0.1", "10.96.1.200", "10.252.0.10", "10.252.0.20", "10.252.0.21", "10.252.0.22", "10.250.0.11", "10.251.0.11")
	if family == v1.IPv6Protocol {
		clients = []client{
			{"fd00:244:1::99", "sy-br", nftmodel.FromPodOrExternal}, {"fd00:244:1::2", "sy-br", nftmodel.FromPodOrExternal},
			{"fd00:250::11", "", nftmodel.FromLocalProcess}, {"fd00:251::100", "sy-outside", nftmodel.FromPodOrExternal},
		}
		dsts = []string{"fd00:96::101", "fd00:96::102", "fd00:96::108", "fd00:96::10a", "fd00:96::1ff", "fd00:250::11", "fd00:251::11"}
	}
	ports := []int{53, 80, 81, 443, 8080, 30080, 30081, 30082, 30083, 30084, 30085, 30086}
	var out []nftmodel.Packet
	for _, c := range clients {
		for _, dst := range dsts {
			for _, port := range ports {
				for _, proto := range []string{"tcp", "udp"} {
					out = append(out, nftmodel.Packet{Proto: proto, Src: netip.MustParseAddr(c.src), Dst: netip.MustParseAddr(dst),
						SrcPort: 40000, DstPort: port, Origin: c.origin, InIface: c.iface})
				}
			}
		}
	}
	return out
}

// outcomes traces pkt and returns its outcomes without the rule traces, sorted.
func outcomes(t *testing.T, rs *nftmodel.Ruleset, node nftmodel.Node, pkt nftmodel.Packet) []string {
	t.Helper()
	res, err := nftmodel.Trace(rs, node, pkt, nftmodel.Options{})
	if err != nil {
		t.Fatalf("%s: %v", pkt, err)
	}
	var out []string
	for _, o := range res.Outcomes {
		out = append(out, o.String())
	}
	slices.Sort(out)
	return out
}

func addrList(list ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		out = append(out, netip.MustParseAddr(strings.TrimSpace(a)))
	}
	return out
}
