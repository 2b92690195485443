package nftables

import (
	"context"
	"hash/fnv"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// dumpingFake is the strict Fake with the netlink Kernel's whole-table rule dump: a
// rule's digest is that of its text, as the kernel's is that of its expressions.
// during, when set, runs at the start of each dump (a sync racing the check).
type dumpingFake struct {
	*knftables.Fake
	during func()
}

func (f *dumpingFake) DumpRules(_ context.Context) (map[string][]KernelRule, error) {
	if f.during != nil {
		f.during()
	}
	out := map[string][]KernelRule{}
	for name, c := range f.Table.Chains {
		for _, r := range c.Rules {
			h := fnv.New64a()
			_, _ = h.Write([]byte(r.Rule))
			out[name] = append(out[name], KernelRule{Handle: uint64(*r.Handle), Digest: h.Sum64()})
		}
	}
	return out, nil
}

// newCheckedProxier is a Proxier for cfg over a dumpingFake, synced fully with
// overallObjects.
func newCheckedProxier(t *testing.T, cfg *Config) (*Proxier, *dumpingFake, *endpoints.Tracker) {
	t.Helper()
	fake := &dumpingFake{Fake: newFake(cfg)}
	p, err := NewProxier(cfg, fake, 0, (&fakeClock{}).Now)
	if err != nil {
		t.Fatal(err)
	}
	tracker := endpoints.NewTracker(testNode)
	for _, obj := range overallObjects() {
		feed(t, tracker, obj)
	}
	mustSync(t, p, tracker.Snapshot(), true)
	return p, fake, tracker
}

func mustCheck(t *testing.T, p *Proxier) proxy.CheckResult {
	t.Helper()
	res, err := p.CheckPeriodic(context.Background())
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if res.Skipped != "" {
		t.Fatalf("check skipped: %s", res.Skipped)
	}
	return res
}

// serviceChainOf returns the first service chain whose name has part and has rules.
func serviceChainOf(t *testing.T, fake *dumpingFake, part string) string {
	t.Helper()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range fake.Table.Chains {
			if !yield(n) {
				return
			}
		}
	}) {
		if IsServiceChain(name) && strings.Contains(name, part) && len(fake.Table.Chains[name].Rules) > 0 {
			return name
		}
	}
	t.Fatalf("no service chain with %q", part)
	return ""
}

// TestCheckFindsNothingInWhatWasApplied: a check right after a full sync, and after a
// partial one, compares every chain and finds nothing; no full sync is asked for.
func TestCheckFindsNothingInWhatWasApplied(t *testing.T) {
	p, _, tracker := newCheckedProxier(t, testConfig())
	res := mustCheck(t, p)
	if len(res.Drifted) > 0 || res.FullSyncReason != "" {
		t.Fatalf("after a full sync: drifted %v, reason %q", res.Drifted, res.FullSyncReason)
	}
	if res.Compared < 20 {
		t.Errorf("compared %d chains, want every chain (20 or more)", res.Compared)
	}
	feed(t, tracker, makeSlice("ns1", "svc1", "svc1-1", 80, ep{IP: "10.180.0.1", Node: testNode}, ep{IP: "10.180.0.9", Node: testNode}))
	mustSync(t, p, tracker.Snapshot(), false)
	res = mustCheck(t, p)
	if len(res.Drifted) > 0 || res.FullSyncReason != "" {
		t.Fatalf("after a partial sync: drifted %v, reason %q", res.Drifted, res.FullSyncReason)
	}
	mustSync(t, p, tracker.Snapshot(), false)
}

// TestCheckFindsDrift changes the table behind the Proxier's back in each way the
// check looks for; each is found, asks for a full sync, and the full sync repairs it
// (the next check finds nothing).
// mutation-checked: comparing no rule counts (the `len(rules) != in.want[c]` case of
// findDrift removed) fails "a rule deleted"; not comparing digests (`prev, ok :=
// in.previous[c]` never ok) fails "a rule replaced in place"; not comparing elements
// (the elementDrift call removed) fails "an element deleted".
func TestCheckFindsDrift(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, fake *dumpingFake)
		// baseline checks once before the change (the digests need one).
		baseline bool
		want     string
	}{
		{name: "a rule deleted", want: "rules, want", change: func(t *testing.T, f *dumpingFake) {
			c := f.Table.Chains[serviceChainOf(t, f, "ns1/svc1")]
			c.Rules = c.Rules[1:]
		}},
		{name: "a chain deleted", want: "missing", change: func(t *testing.T, f *dumpingFake) {
			delete(f.Table.Chains, serviceChainOf(t, f, "ns3/svc3"))
		}},
		{name: "a chain added", want: "not rendered", change: func(t *testing.T, f *dumpingFake) {
			tx := f.NewTransaction()
			tx.Add(&knftables.Chain{Name: "service-AAAAAAAA-ns9/ghost/tcp/p80"})
			if err := f.Run(context.Background(), tx); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a fixed chain's rule deleted", want: "services", change: func(t *testing.T, f *dumpingFake) {
			c := f.Table.Chains[ChainServices]
			c.Rules = c.Rules[:len(c.Rules)-1]
		}},
		{name: "a rule replaced in place", baseline: true, want: "changed since the previous check", change: func(t *testing.T, f *dumpingFake) {
			c := f.Table.Chains[serviceChainOf(t, f, "ns4/svc4")]
			c.Rules[0] = &knftables.Rule{Chain: c.Name, Rule: "counter accept", Handle: c.Rules[0].Handle}
		}},
		{name: "an element deleted", want: "service-ips: 1 elements missing", change: func(t *testing.T, f *dumpingFake) {
			tx := f.NewTransaction()
			tx.Delete(knftElement(mapServiceIPs, "172.30.0.41 . tcp . 80", "", ""))
			if err := f.Run(context.Background(), tx); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, fake, tracker := newCheckedProxier(t, testConfig())
			if tc.baseline {
				mustCheck(t, p)
			}
			tc.change(t, fake)
			res := mustCheck(t, p)
			if res.FullSyncReason != reasonDrifted || !strings.Contains(strings.Join(res.Drifted, "\n"), tc.want) {
				t.Fatalf("reason %q, drifted %v; want %q and a drift with %q", res.FullSyncReason, res.Drifted, reasonDrifted, tc.want)
			}
			if r := mustSync(t, p, tracker.Snapshot(), true); r.Reason != reasonDrifted {
				t.Errorf("the next sync's reason is %q, want %q", r.Reason, reasonDrifted)
			}
			if res := mustCheck(t, p); len(res.Drifted) > 0 {
				t.Errorf("after the full sync the check still finds %v", res.Drifted)
			}
		})
	}
}

// TestCheckLeavesWhatASyncChangesMeanwhile: a partial sync that rewrites a service
// while the check reads the table is no drift; the elements are left to the next check.
// mutation-checked: not skipping the chains of services changed during the read
// (`skip := map[string]bool{}` in check) fails it with svc7's service chain
// "missing": the chain list was read before the sync added it.
func TestCheckLeavesWhatASyncChangesMeanwhile(t *testing.T) {
	p, fake, tracker := newCheckedProxier(t, testConfig())
	mustCheck(t, p)
	fake.during = func() {
		fake.during = nil
		feed(t, tracker, makeService("ns7", "svc7", "172.30.0.47"))
		feed(t, tracker, makeSlice("ns7", "svc7", "svc7-1", 80, ep{IP: "10.180.0.7", Node: testNode}))
		mustSync(t, p, tracker.Snapshot(), false)
	}
	res := mustCheck(t, p)
	if len(res.Drifted) > 0 || res.FullSyncReason != "" {
		t.Fatalf("drifted %v, reason %q", res.Drifted, res.FullSyncReason)
	}
	if res := mustCheck(t, p); len(res.Drifted) > 0 {
		t.Fatalf("the next check: drifted %v", res.Drifted)
	}
}

// TestCheckWithoutARuleDumpIsAFullSync: over a Kernel that cannot dump its rules the
// periodic check is the periodic full sync.
func TestCheckWithoutARuleDumpIsAFullSync(t *testing.T) {
	p, _, _ := newTestProxier(t, testConfig())
	mustSync(t, p, snapshotOf(t, overallObjects()...), true)
	res, err := p.CheckPeriodic(context.Background())
	if err != nil || res.FullSyncReason != proxy.ReasonPeriodic {
		t.Fatalf("reason %q, %v; want %q", res.FullSyncReason, err, proxy.ReasonPeriodic)
	}
}

// TestCheckComparesDigestsAcrossManySyncs: between two checks an hour apart the
// tracker takes far more snapshots than it keeps history for. The check still compares
// the rules of every chain no sync wrote meanwhile (a rule replaced in place in svc4's
// chain is found), and leaves the chains partial syncs rewrote (svc1's, 40 times) alone.
// mutation-checked: not recording the chains partial syncs write (the
// writtenSinceCheck loop over plan.WrittenChains in succeeded removed) fails it with
// svc1's chain "rules changed since the previous check".
func TestCheckComparesDigestsAcrossManySyncs(t *testing.T) {
	p, fake, tracker := newCheckedProxier(t, testConfig())
	mustCheck(t, p)
	for i := range 40 {
		extra := ep{IP: "10.180.0.9", Node: testNode}
		if i%2 == 1 {
			extra.IP = "10.180.0.8"
		}
		feed(t, tracker, makeSlice("ns1", "svc1", "svc1-1", 80, ep{IP: "10.180.0.1", Node: testNode}, extra))
		mustSync(t, p, tracker.Snapshot(), false)
	}
	replaced := serviceChainOf(t, fake, "ns4/svc4")
	c := fake.Table.Chains[replaced]
	c.Rules[0] = &knftables.Rule{Chain: c.Name, Rule: "counter accept", Handle: c.Rules[0].Handle}
	res := mustCheck(t, p)
	if want := []string{replaced + ": rules changed since the previous check"}; !slices.Equal(res.Drifted, want) {
		t.Fatalf("drifted %v, want %v", res.Drifted, want)
	}
}
