package nftables

import (
	"context"
	"strings"
	"testing"
	"time"

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

// compareTablesEventually waits (bounded) until the tables want and got
// return are equal up to element order, and fails with the diff of the
// last look: proxies sync at their own pace (kube-proxy at most once a
// second), and both delete a stale chain a second or more after flushing it
// (kernels before 6.2 see a map element's reference to a chain late).
//
// With ignoreIdle, empty chains nothing refers to are left out on both sides:
// a flushed chain waits for the proxy's next sync to be deleted, which comes
// at a moment of its own in each proxy.
func compareTablesEventually(ctx context.Context, t *testing.T, ignoreIdle bool, wantName string, want func() string, gotName string, got func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		wantText, gotText := want(), got()
		if canonicalTables(t, wantName, wantText, ignoreIdle) == canonicalTables(t, gotName, gotText, ignoreIdle) || time.Now().After(deadline) {
			compareTables(t, ignoreIdle, wantName, wantText, gotName, gotText)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// tablesOf returns a function reading node's tables, for
// compareTablesEventually; fixed returns one that always gives text.
func tablesOf(ctx context.Context, t *testing.T, node *testbed.Node) func() string {
	return func() string { return nftDumps(ctx, t, node) }
}

func fixed(text string) func() string { return func() string { return text } }

func canonicalTables(t *testing.T, name, text string, ignoreIdle bool) string {
	t.Helper()
	rs, err := nftmodel.Parse(text)
	if err != nil {
		t.Fatalf("%s: the model cannot read the tables: %v\n%s", name, err, text)
	}
	if ignoreIdle {
		rs.DropIdleChains()
	}
	return nftmodel.Canonical(rs)
}

// compareTables fails with a unified diff of the two dumps' canonical forms
// (objects and elements sorted, rules in order) when they differ.
func compareTables(t *testing.T, ignoreIdle bool, wantName, wantText, gotName, gotText string) {
	t.Helper()
	want, got := canonicalTables(t, wantName, wantText, ignoreIdle), canonicalTables(t, gotName, gotText, ignoreIdle)
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
