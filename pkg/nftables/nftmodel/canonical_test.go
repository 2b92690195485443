package nftmodel

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCanonical checks that element and object order do not matter, and
// that rule order, a changed element and a changed base chain do.
//
// mutation-checked: not sorting elements (writeSet) fails "element order";
// sorting rules fails "rule order matters".
func TestCanonical(t *testing.T) {
	const base = `table ip t {
	set s {
		type ipv4_addr
		elements = { 10.0.0.1, 10.0.0.2 }
	}
	set affinity {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 1m
	}
	chain c {
		type filter hook input priority filter; policy accept;
		ip daddr @s drop
		accept
	}
	chain d {
		return
	}
}
`
	canonical := func(text string) string {
		t.Helper()
		rs, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		return Canonical(rs)
	}
	want := canonical(base)
	for _, tc := range []struct {
		name  string
		text  string
		equal bool
	}{
		{"element order", strings.Replace(base, "10.0.0.1, 10.0.0.2", "10.0.0.2, 10.0.0.1", 1), true},
		{"chain order", strings.Replace(strings.Replace(base, "\tchain d {\n\t\treturn\n\t}\n", "", 1),
			"\tchain c {", "\tchain d {\n\t\treturn\n\t}\n\tchain c {", 1), true},
		{"elements the kernel added to a dynamic set", strings.Replace(base, "\t\ttimeout 1m\n", "\t\ttimeout 1m\n\t\telements = { 10.244.1.4 expires 55s376ms }\n", 1), true},
		{"rule order matters", strings.Replace(base, "\t\tip daddr @s drop\n\t\taccept\n", "\t\taccept\n\t\tip daddr @s drop\n", 1), false},
		{"an element matters", strings.Replace(base, "10.0.0.2", "10.0.0.3", 1), false},
		{"a timeout matters", strings.Replace(base, "timeout 1m", "timeout 2m", 1), false},
		{"a priority matters", strings.Replace(base, "priority filter;", "priority filter - 1;", 1), false},
		{"line form of the same table", `add table ip t
add chain ip t c { type filter hook input priority 0 ; }
add chain ip t d
add set ip t s { type ipv4_addr ; }
add set ip t affinity { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; size 65535 ; }
add rule ip t c ip daddr @s drop
add rule ip t c accept
add rule ip t d return
add element ip t s { 10.0.0.2 }
add element ip t s { 10.0.0.1 }
`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := canonical(tc.text)
			if diff := cmp.Diff(want, got); (diff == "") != tc.equal {
				t.Errorf("equal %v, want %v; diff (-base +variant):\n%s", diff == "", tc.equal, diff)
			}
		})
	}
}
