package nftmodel

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNamedCounters reads named counters as `nft list table` prints them (with
// their values, which the model does not keep) and as knftables writes them, checks
// that a rule naming one is traced through (the counter does not change the verdict),
// and that Canonical lists them, so that two tables differing in counters do not
// compare equal. kube-proxy's localhost node-port rejects use them.
//
// mutation-checked: leaving counters out of Canonical fails "canonical"; ignoring
// `delete counter` fails "deleted".
func TestNamedCounters(t *testing.T) {
	listing := "table ip t {\n\tcounter rejected-tcp {\n\t\tpackets 3 bytes 180\n\t}\n" +
		"\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n" +
		"\t\tip daddr 127.0.0.0/8 tcp dport 30001 counter name \"rejected-tcp\" reject\n\t}\n}\n"
	rs, err := Parse(listing)
	if err != nil {
		t.Fatal(err)
	}
	pkt := Packet{Proto: "tcp", Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), DstPort: 30001, SrcPort: 40000, Origin: FromLocalProcess}
	res, err := Trace(rs, Node{}, pkt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"REJECT p=1.0000 local"}, summarize(res)); diff != "" {
		t.Errorf("trace (-want +got):\n%s", diff)
	}
	t.Run("canonical", func(t *testing.T) {
		if got := Canonical(rs); !strings.Contains(got, "  counter rejected-tcp\n") {
			t.Errorf("Canonical does not list the counter:\n%s", got)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		rs, err := Parse("add table ip t\nadd counter ip t c\nadd counter ip t d\ndelete counter ip t c\n")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]bool{"d": true}, rs.Table("ip", "t").Counters); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
	})
}
