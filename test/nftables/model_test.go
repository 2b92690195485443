package nftables

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
	"github.com/switchyard-io/switchyard/test/testbed"
)

// TestNFTablesModel checks nftmodel against the kernel: the pinned
// kube-proxy v1.37.2 programs node-1 in nftables mode, the model reads its
// tables (`nft list table`), and every probe's prediction (which pods answer
// and the source each sees, or refused, or dropped) must be what real
// connections do.
//
// mutation-checked (in nftmodel): making `fib saddr type` always unicast
// predicts "dropped" for the node's connection to the eTP Local node port
// with no local endpoint, which answers; ignoring the hairpin set's
// masquerade predicts web-1 seeing its own address where it sees the
// bridge's.
func TestNFTablesModel(t *testing.T) {
	testbed.Require(t)
	w := startWorld(t)
	podClient := w.cluster.AddPod(t, w.node1, "client-1")
	w.cluster.AddKubeProxy(t, w.node1, "nftables")
	ctx := t.Context()
	if _, err := testbed.WaitForReply(ctx, w.node1, "tcp", "10.96.1.1:80", 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	tables := readTables(ctx, t, w.node1)
	checkProbes(ctx, t, w, tables, w.probes(w.clients(w.node1, podClient)))
}

// readTables parses node's ip and ip6 kube-proxy tables with the model.
func readTables(ctx context.Context, t *testing.T, node *testbed.Node) map[string]*nftmodel.Ruleset {
	t.Helper()
	tables := map[string]*nftmodel.Ruleset{}
	for _, family := range []string{"ip", "ip6"} {
		dump, err := nftList(ctx, node, family)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := nftmodel.Parse(dump)
		if err != nil {
			t.Fatalf("the model cannot read %s's %s table: %v\n%s", node.Name, family, err, dump)
		}
		tables[family] = rs
	}
	return tables
}

// checkProbes makes every probe's connections and compares them with the
// model's prediction on tables. It returns the observations by probe.
func checkProbes(ctx context.Context, t *testing.T, w *world, tables map[string]*nftmodel.Ruleset, probes []probe) map[string]string {
	t.Helper()
	observed := map[string]string{}
	for _, p := range probes {
		want, result, err := w.predict(w.node1, tables, p, "")
		if err != nil {
			t.Errorf("%s: model: %v", p, err)
			continue
		}
		got := observe(ctx, p)
		observed[p.String()] = got
		if got == want {
			continue
		}
		// Session affinity: a client is new to the affinity sets only
		// for its first connection; every later one is known to the set
		// of the endpoint it got.
		matched := false
		for _, o := range result.Outcomes {
			if o.Affinity == "" {
				continue
			}
			if hit, _, err := w.predict(w.node1, tables, p, o.Affinity); err == nil && hit == got {
				matched = true
				break
			}
		}
		if !matched {
			t.Errorf("%s: the model predicts %q, real connections got %q\n%s", p, want, got, result)
		}
	}
	t.Logf("%d probes checked against the model", len(probes))
	return observed
}
