package nftables

import (
	"testing"

	"github.com/mdlayher/netlink"
)

// expressions encodes a rule's NFTA_RULE_EXPRESSIONS as the kernel dumps it: one nested
// element per expression, each with its name and data.
func expressions(t *testing.T, exprs ...[2]string) []byte {
	t.Helper()
	var list []netlink.Attribute
	for _, e := range exprs {
		elem, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: nftaExprName, Data: []byte(e[0] + "\x00")},
			{Type: nftaExprData, Data: []byte(e[1])},
		})
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, netlink.Attribute{Type: 1, Data: elem}) // NFTA_LIST_ELEM
	}
	b, err := netlink.MarshalAttributes(list)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDigestExpressions: a rule's digest follows its expressions, but not the data of
// a counter, which traffic changes, so that a periodic check never calls passing
// packets drift.
// mutation-checked: hashing every expression's data (statefulExpressions ignored in
// digestExpressions) fails "counter values".
func TestDigestExpressions(t *testing.T) {
	digest := func(exprs ...[2]string) uint64 {
		d, err := digestExpressions(expressions(t, exprs...))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := digest([2]string{"payload", "daddr"}, [2]string{"counter", "packets 0"}, [2]string{"immediate", "goto a"})
	if d := digest([2]string{"payload", "daddr"}, [2]string{"counter", "packets 912"}, [2]string{"immediate", "goto a"}); d != base {
		t.Error("counter values: the digest changed with the counter's packets")
	}
	if d := digest([2]string{"payload", "daddr"}, [2]string{"counter", "packets 0"}, [2]string{"immediate", "goto b"}); d == base {
		t.Error("another verdict: same digest")
	}
	if d := digest([2]string{"payload", "daddr"}, [2]string{"immediate", "goto a"}); d == base {
		t.Error("the counter removed: same digest")
	}
	if _, err := digestExpressions([]byte{1, 2, 3}); err == nil {
		t.Error("a truncated list: no error")
	}
}
