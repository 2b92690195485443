package nftables

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// IP plan: the randomService/randomSlice world of partial_test.go (cluster IPs
// 172.30.0.10+i, external and load-balancer IPs in 203.0.113.0/24, endpoints
// 10.180.0.1-2 on this node and 10.180.1.1-2 on another).

// randomWorld returns a snapshot of n random Services (randomService, randomSlice)
// drawn from seed.
func randomWorld(t *testing.T, seed uint64, n int) *endpoints.Snapshot {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	var objects []any
	for i := range n {
		if r.IntN(5) == 0 {
			continue // absent from this world: its chains are stale if the other has them
		}
		objects = append(objects, randomService(r, i))
		if r.IntN(4) != 0 {
			objects = append(objects, randomSlice(r, i))
		}
	}
	return snapshotOf(t, objects...)
}

// loaded returns a fake holding a full sync of snap (nil: an empty fake).
func loaded(t *testing.T, cfg *Config, snap *endpoints.Snapshot) *knftables.Fake {
	t.Helper()
	fake := newFake(cfg)
	if snap != nil {
		applyFull(t, fake, snap, cfg, true)
	}
	return fake
}

// renderOver renders next in full over fake's table, portsPerTx ports per transaction.
func renderOver(t *testing.T, fake *knftables.Fake, next *endpoints.Snapshot, cfg *Config, portsPerTx int) *Plan {
	t.Helper()
	kernel, err := readKernel(context.Background(), fake)
	if err != nil {
		t.Fatal(err)
	}
	kernel.RecreateBaseChains = true
	return RenderInTransactions(fake.NewTransaction, next, cfg, kernel, portsPerTx)
}

// TestFullSyncInTransactionsEqualsOne renders random worlds, cold (an empty table) and
// over the table of another world (a restart's full sync, with stale chains, stale
// affinity sets and elements to change or delete), in transactions of 1, 2 and 3
// service ports, and applies them one by one to the strict fake, which rejects an
// element whose verdict jumps to a chain that does not exist yet. After each
// transaction every service port's chains hold either all their old rules or all
// their new ones; at the end the table equals the one-transaction render's, and so do
// the plans' stats, element mirror and stale chains.
//
// mutation-checked: writing every group's elements into the first transaction fails
// "cold" and "restart" with "no such chain"; dropping the last group's transaction
// fails the consistency check after the last transaction; writing a group's chains in
// one transaction and their rules in the next fails the consistency check; flushing
// the stale chains and deleting the stale affinity sets in the first transaction
// fails it too (an old endpoint chain of a port not yet rewritten is emptied).
func TestFullSyncInTransactionsEqualsOne(t *testing.T) {
	cfg := testConfig()
	for seed := range uint64(12) {
		next := randomWorld(t, seed, 9)
		for _, start := range []struct {
			name string
			snap *endpoints.Snapshot
		}{{"cold", nil}, {"restart", randomWorld(t, seed+100, 9)}} {
			for _, portsPerTx := range []int{1, 2, 3} {
				t.Run(fmt.Sprintf("seed%d/%s/%d", seed, start.name, portsPerTx), func(t *testing.T) {
					one := loaded(t, cfg, start.snap)
					wantPlan := renderOver(t, one, next, cfg, 1<<30)
					if n := len(wantPlan.Txs); n != 1 {
						t.Fatalf("the reference render has %d transactions, want 1", n)
					}
					if err := Apply(context.Background(), one, wantPlan); err != nil {
						t.Fatalf("one transaction: %v\n%s", err, wantPlan)
					}

					split := loaded(t, cfg, start.snap)
					plan := renderOver(t, split, next, cfg, portsPerTx)
					groups := (plan.Stats.Services + portsPerTx - 1) / portsPerTx
					// A group of ports without chains whose elements are in place
					// already writes nothing, and no transaction is empty.
					if len(plan.Txs) > groups+2 || (groups <= 1 && len(plan.Txs) != 1) {
						t.Errorf("%d transactions for %d service ports in groups of %d", len(plan.Txs), plan.Stats.Services, portsPerTx)
					}
					for i, tx := range plan.Txs {
						if tx.NumOperations() == 0 {
							t.Errorf("transaction %d of %d is empty", i+1, len(plan.Txs))
						}
					}
					old := portChains(start.snap, cfg)
					want := portChains(next, cfg)
					for i, tx := range plan.Txs {
						if err := split.Run(context.Background(), tx); err != nil {
							t.Fatalf("transaction %d of %d: %v\n%s", i+1, len(plan.Txs), err, tx)
						}
						if bad := inconsistentPorts(split, old, want); len(bad) > 0 {
							t.Fatalf("after transaction %d of %d, service ports with old and new rules mixed: %v\n%s", i+1, len(plan.Txs), bad, tx)
						}
					}
					if diff := cmp.Diff(canonicalDump(t, one.Dump()), canonicalDump(t, split.Dump())); diff != "" {
						t.Errorf("table after %d transactions (-one +split):\n%s", len(plan.Txs), diff)
					}
					if diff := cmp.Diff(wantPlan.Stats, plan.Stats); diff != "" {
						t.Errorf("stats (-one +split):\n%s", diff)
					}
					if diff := cmp.Diff(wantPlan.StaleChains, plan.StaleChains); diff != "" {
						t.Errorf("stale chains (-one +split):\n%s", diff)
					}
					if diff := cmp.Diff(wantPlan.elements.Snapshot(), plan.elements.Snapshot()); diff != "" {
						t.Errorf("element mirror (-one +split):\n%s", diff)
					}
				})
			}
		}
	}
}

// portChains returns each service port's chains in snap with their rule texts (none
// for a nil snap).
func portChains(snap *endpoints.Snapshot, cfg *Config) map[endpoints.ServicePortName]map[string][]string {
	out := map[endpoints.ServicePortName]map[string][]string{}
	if snap == nil {
		return out
	}
	for _, name := range snap.SortedServices() {
		objs := renderService(snap.Services[name], snap.Endpoints[name], cfg)
		if objs == nil {
			continue
		}
		chains := map[string][]string{}
		for _, c := range objs.chains {
			for _, r := range c.rules {
				chains[c.name] = append(chains[c.name], r.text)
			}
		}
		out[name] = chains
	}
	return out
}

// inconsistentPorts returns the service ports whose chains in fake are neither all as
// in old (or absent, for a port old lacks) nor all as in want.
func inconsistentPorts(fake *knftables.Fake, old, want map[endpoints.ServicePortName]map[string][]string) []string {
	holds := func(chains map[string][]string) bool {
		for name, rules := range chains {
			c := fake.Table.Chains[name]
			if c == nil {
				return false
			}
			var got []string
			for _, r := range c.Rules {
				got = append(got, r.Rule)
			}
			if !slices.Equal(got, rules) {
				return false
			}
		}
		return true
	}
	var bad []string
	for name, chains := range want {
		if holds(chains) {
			continue
		}
		if before, ok := old[name]; ok && holds(before) {
			continue
		}
		if _, ok := old[name]; !ok && noneExist(fake, chains) {
			continue
		}
		bad = append(bad, name.String())
	}
	slices.Sort(bad)
	return bad
}

func noneExist(fake *knftables.Fake, chains map[string][]string) bool {
	for name := range chains {
		if c := fake.Table.Chains[name]; c != nil && len(c.Rules) > 0 {
			return false
		}
	}
	return true
}

// TestFullRenderTransactionsLayout pins the order of a full render in several
// transactions: the fixed objects alone first, then each group of ports with the
// elements that jump to its chains, the stale chains last.
//
// mutation-checked: writing the stale chains' flushes into the last group (no new
// transaction before writeStale) fails the count of transactions; writing every
// group's element changes into the last group fails "jumping to … which it does not
// write".
func TestFullRenderTransactionsLayout(t *testing.T) {
	cfg := testConfig()
	fake := loaded(t, cfg, snapshotOf(t, overallObjects()[:2]...))
	// ns1/svc1 goes: its chains are stale; five other ports come.
	plan := renderOver(t, fake, snapshotOf(t, overallObjects()[2:]...), cfg, 2)
	if len(plan.Txs) != 5 {
		t.Fatalf("%d transactions, want the fixed objects, 3 groups of 2 ports and the stale chains:\n%s", len(plan.Txs), plan)
	}
	texts := make([]string, len(plan.Txs))
	for i, tx := range plan.Txs {
		texts[i] = tx.String()
	}
	if strings.Contains(texts[0], "ns2/svc2") || !strings.Contains(texts[0], "add chain ip kube-proxy nat-prerouting") {
		t.Errorf("transaction 1 should hold the fixed objects and no service:\n%s", texts[0])
	}
	// ns6/svc6 has no endpoints, hence no chain: its group holds its no-endpoint
	// element.
	for i, ports := range [][]string{{"ns2/svc2", "ns3/svc3"}, {"ns4/svc4", "ns5/svc5"}, {"ns6/svc6"}} {
		text := texts[1+i]
		for _, p := range ports {
			if !strings.Contains(text, p) {
				t.Errorf("transaction %d lacks %s's objects:\n%s", 2+i, p, text)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			if !strings.HasPrefix(line, "add element") {
				continue
			}
			if target, ok := gotoTarget(line); ok && !strings.Contains(text, "add chain ip kube-proxy "+target+"\n") && target != chainReject {
				t.Errorf("transaction %d adds an element jumping to %s, which it does not write:\n%s", 2+i, target, line)
			}
		}
	}
	last := texts[4]
	for _, c := range []string{"flush chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80", "delete element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 }"} {
		if !strings.Contains(last, c) {
			t.Errorf("the last transaction lacks %q:\n%s", c, last)
		}
	}
	if strings.Contains(last, "add ") {
		t.Errorf("the last transaction adds something:\n%s", last)
	}
	s := plan.String()
	for i := range plan.Txs {
		if !strings.Contains(s, fmt.Sprintf("# transaction %d of 5\n", i+1)) {
			t.Errorf("Plan.String lacks the comment before transaction %d", i+1)
		}
	}
}

// gotoTarget returns the chain an element line's verdict goes to.
func gotoTarget(line string) (string, bool) {
	_, after, ok := strings.Cut(line, ": goto ")
	if !ok {
		return "", false
	}
	return strings.Fields(after)[0], true
}

// failingKernel is the strict fake, failing its failAt-th Run (1-based) once.
type failingKernel struct {
	*knftables.Fake
	runs, failAt int
}

var errInjected = errors.New("injected failure")

func (k *failingKernel) Run(ctx context.Context, tx *knftables.Transaction) error {
	k.runs++
	if k.runs == k.failAt {
		return errInjected
	}
	return k.Fake.Run(ctx, tx)
}

// TestFailedTransactionOfAFullSync fails each transaction of a restart's full sync in
// turn: the sync fails and forgets the element mirror and the stale chains, the next
// sync is full and repairs the table (equal to a fresh one, once the stale chains are
// deleted), and the mirror then equals the kernel's elements.
//
// mutation-checked: not calling p.failed() when Apply fails fails "mirror forgotten";
// committing the plan's mirror on failure (p.succeeded before the error return)
// fails it too.
func TestFailedTransactionOfAFullSync(t *testing.T) {
	cfg := testConfig()
	before, after := randomWorld(t, 3, 9), randomWorld(t, 4, 9)
	probe := loaded(t, cfg, before)
	n := len(renderOver(t, probe, after, cfg, 2).Txs)
	if n < 4 {
		t.Fatalf("the render has %d transactions; the test needs several groups", n)
	}
	for failAt := 1; failAt <= n; failAt++ {
		t.Run(fmt.Sprintf("transaction %d of %d", failAt, n), func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
			kernel := &failingKernel{Fake: newFake(cfg)}
			p, err := NewProxier(cfg, kernel, 0, clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			p.portsPerTx = 2
			mustSync(t, p, before, true)
			runs := kernel.runs

			p.RequestFullSync("test")
			kernel.failAt = runs + failAt
			res, err := p.SyncDetailed(context.Background(), after)
			if !errors.Is(err, errInjected) {
				t.Fatalf("full sync with transaction %d failing: %v", failAt, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("transaction %d of %d", failAt, n)) {
				t.Errorf("the error does not say which transaction failed: %v", err)
			}
			if got := p.AppliedElements(); got != nil {
				t.Errorf("mirror forgotten: still %d containers after the failure", len(got))
			}
			if got := p.StaleChains(); len(got) != 0 {
				t.Errorf("stale chains kept after the failure: %v", got)
			}
			_ = res

			res = mustSync(t, p, after, true)
			if res.Reason != proxy.ReasonFailed {
				t.Errorf("reason %q, want %q", res.Reason, proxy.ReasonFailed)
			}
			mirror := p.AppliedElements()
			clock.now = clock.now.Add(StaleChainDelay)
			mustSync(t, p, after, false) // deletes the stale chains
			fresh := loaded(t, cfg, after)
			if diff := cmp.Diff(canonicalDump(t, fresh.Dump()), canonicalDump(t, kernel.Dump())); diff != "" {
				t.Errorf("after the repair (-fresh +repaired):\n%s", diff)
			}
			kernelElements := map[string]map[string]string{}
			for _, c := range containers {
				m, err := listElements(context.Background(), kernel, c)
				if err != nil {
					t.Fatal(err)
				}
				if len(m) > 0 {
					kernelElements[c] = m
				}
			}
			if diff := cmp.Diff(kernelElements, mirror); diff != "" {
				t.Errorf("mirror after the repair (-kernel +mirror):\n%s", diff)
			}
		})
	}
}
