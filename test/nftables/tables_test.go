package nftables

import (
	"context"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
	"github.com/switchyard-io/switchyard/test/testbed"
)

// nftDumps returns node's kube-proxy tables, ip then ip6, in nft's text.
func nftDumps(ctx context.Context, t *testing.T, node *testbed.Node) string {
	t.Helper()
	var dumps strings.Builder
	for _, family := range []string{"ip", "ip6"} {
		dump, err := nftList(ctx, node, family)
		if err != nil {
			t.Fatal(err)
		}
		dumps.WriteString(dump)
	}
	return dumps.String()
}

// compareTables fails with a unified diff of the two dumps' canonical forms
// (objects and elements sorted, rules in order) when they differ.
func compareTables(t *testing.T, wantName, wantText, gotName, gotText string) {
	t.Helper()
	canonical := func(name, text string) string {
		rs, err := nftmodel.Parse(text)
		if err != nil {
			t.Fatalf("%s: the model cannot read the tables: %v\n%s", name, err, text)
		}
		return nftmodel.Canonical(rs)
	}
	want, got := canonical(wantName, wantText), canonical(gotName, gotText)
	if want == got {
		return
	}
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(want), B: difflib.SplitLines(got),
		FromFile: wantName, ToFile: gotName, Context: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Errorf("tables differ (canonical form: objects and elements sorted):\n%s", diff)
}
