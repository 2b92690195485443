package nftkernel

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/nftables"
)

// sameReads checks that the daemon's Kernel (netlink reads, nftables.OpenIn) reads the
// table exactly as knftables through the nft binary does: the names of the chains, sets
// and maps, every chain's rules (handle and comment, what knftables fills in), and the
// elements of every shared set and map, keys and values as nft prints them.
// mutation-checked: listing anonymous sets among the named ones (pkg/nftables
// netlink.go listSets without `!s.Anonymous`) fails it, as does printing an unnamed
// verdict code ("goto" → "go to" in decode.go's verdictNames).
func sameReads(t *testing.T, netlink, nft nftables.Kernel) {
	t.Helper()
	ctx := context.Background()
	var chains []string
	for _, kind := range []string{"chain", "set", "map"} {
		got, err := netlink.List(ctx, kind)
		if err != nil {
			t.Fatalf("netlink List(%s): %v", kind, err)
		}
		want, err := nft.List(ctx, kind)
		if err != nil {
			t.Fatalf("nft List(%s): %v", kind, err)
		}
		slices.Sort(got)
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("List(%s), netlink against nft (-nft +netlink):\n%s", kind, diff)
		}
		if kind == "chain" {
			chains = want
		}
	}
	if len(chains) < 20 {
		t.Fatalf("only %d chains to compare: %v", len(chains), chains)
	}
	for _, chain := range chains {
		got, err := netlink.ListRules(ctx, chain)
		if err != nil {
			t.Fatalf("netlink ListRules(%s): %v", chain, err)
		}
		want, err := nft.ListRules(ctx, chain)
		if err != nil {
			t.Fatalf("nft ListRules(%s): %v", chain, err)
		}
		// knftables' nft reads fill in the family and table too.
		for _, r := range want {
			r.Family, r.Table = "", ""
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListRules(%s), netlink against nft (-nft +netlink):\n%s", chain, diff)
		}
	}
	elements := 0
	for _, c := range []struct{ kind, name string }{{"set", "cluster-ips"}, {"set", "hairpin-connections"}, {"map", "service-ips"},
		{"map", "service-nodeports"}, {"map", "no-endpoint-services"}, {"map", "no-endpoint-nodeports"}, {"map", "firewall-ips"}} {
		got, err := netlink.ListElements(ctx, c.kind, c.name)
		if err != nil {
			t.Fatalf("netlink ListElements(%s): %v", c.name, err)
		}
		want, err := nft.ListElements(ctx, c.kind, c.name)
		if err != nil {
			t.Fatalf("nft ListElements(%s): %v", c.name, err)
		}
		if diff := cmp.Diff(sortedElements(want), sortedElements(got)); diff != "" {
			t.Errorf("ListElements(%s), netlink against nft (-nft +netlink):\n%s", c.name, diff)
		}
		elements += len(want)
	}
	if elements < 20 {
		t.Errorf("only %d elements compared", elements)
	}
	t.Logf("netlink reads equal nft's: %d chains with their rules, %d elements", len(chains), elements)
}

func sortedElements(elems []*knftables.Element) []*knftables.Element {
	slices.SortFunc(elems, func(a, b *knftables.Element) int {
		return strings.Compare(strings.Join(a.Key, " . "), strings.Join(b.Key, " . "))
	})
	return elems
}
