package iptables

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// checkFixture is a Proxier over the fake kernel that has applied two snapshots: a
// full sync of web and api, then a partial one that added an endpoint to web and the
// service db, so that the shared chains hold rules in another order than a full render
// writes them.
type checkFixture struct {
	fake    *xtablestest.Fake
	p       *Proxier
	tracker *endpoints.Tracker
	snap    *endpoints.Snapshot
}

func newCheckFixture(t *testing.T, ipt func(*xtablestest.Fake) xtables.Interface) *checkFixture {
	t.Helper()
	ctx := context.Background()
	f := &checkFixture{fake: xtablestest.NewFake(ruleset.IPv4), tracker: endpoints.NewTracker(testNode)}
	var kernel xtables.Interface = f.fake
	if ipt != nil {
		kernel = ipt(f.fake)
	}
	var err error
	if f.p, err = NewProxier(testConfig(), kernel, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	feed(t, f.tracker,
		makeService("ns", "web", "172.30.0.10"), makeSlice("ns", "web", "web-1", 8080, ep{IP: "10.180.0.1", Node: testNode}),
		makeService("ns", "api", "172.30.0.11"), makeSlice("ns", "api", "api-1", 8080, ep{IP: "10.180.0.3", Node: "node2"}))
	if res, err := f.p.Sync(ctx, f.tracker.Snapshot()); err != nil || !res.Full {
		t.Fatalf("first sync: full=%v err=%v, want a full sync", res.Full, err)
	}
	feed(t, f.tracker,
		makeSlice("ns", "web", "web-1", 8080, ep{IP: "10.180.0.1", Node: testNode}, ep{IP: "10.180.0.2", Node: "node2"}),
		makeService("ns", "db", "172.30.0.12"), makeSlice("ns", "db", "db-1", 5432, ep{IP: "10.180.0.4", Node: testNode}))
	f.snap = f.tracker.Snapshot()
	if res, err := f.p.Sync(ctx, f.snap); err != nil || res.Full {
		t.Fatalf("second sync: full=%v err=%v, want a partial sync", res.Full, err)
	}
	return f
}

// fullRender returns the tables a fresh Proxier's full sync of snap leaves in an empty
// kernel, canonically ordered.
func fullRender(t *testing.T, snap *endpoints.Snapshot) string {
	t.Helper()
	fresh := xtablestest.NewFake(ruleset.IPv4)
	p, err := NewProxier(testConfig(), fresh, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return canonicalTables(t, fresh.Ruleset())
}

// firstChain returns the first nat chain whose name starts with prefix.
func firstChain(t *testing.T, fake *xtablestest.Fake, prefix string) string {
	t.Helper()
	for _, name := range fake.Ruleset().ChainNames("nat") {
		if strings.HasPrefix(name, prefix) {
			return name
		}
	}
	t.Fatalf("no nat chain %s*", prefix)
	return ""
}

// TestCheckWithoutDriftWritesNothing checks that the periodic check of tables that
// hold what was applied writes nothing: no restore, no full sync requested, even
// though partial syncs left the shared chains in another order than a full render.
// mutation-checked: comparing the shared chains in order (sharedOrder not called)
// fails it, since the partial sync appended db's rules after the full sync's.
func TestCheckWithoutDriftWritesNothing(t *testing.T) {
	f := newCheckFixture(t, nil)
	restores := len(f.fake.Restores())
	res, err := f.p.CheckPeriodic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Drifted) != 0 || res.Repaired || res.FullSyncReason != "" || res.Skipped != "" {
		t.Errorf("check of tables in sync: drifted %v, repaired %v, full sync %q, skipped %q; want nothing", res.Drifted, res.Repaired, res.FullSyncReason, res.Skipped)
	}
	if res.Compared < 10 {
		t.Errorf("compared %d chains, want every chain of the render", res.Compared)
	}
	if got := len(f.fake.Restores()) - restores; got != 0 {
		t.Errorf("the check ran %d restores, want none", got)
	}
	// And the periodic full sync is gone: the next sync, an hour later or not, is
	// partial (the controller calls CheckPeriodic instead).
	if res, err := f.p.Sync(context.Background(), f.tracker.Snapshot()); err != nil || res.Full {
		t.Errorf("sync after the check: full=%v (%s) err=%v, want partial", res.Full, res.Reason, err)
	}
}

// TestCheckRepairsDrift tampers with the tables behind the Proxier's back, then checks
// that the periodic check finds exactly the chains tampered with and rewrites them in
// one restore, after which the tables equal a fresh full render; or, when the hooks or
// canaries are gone, that it writes nothing and the next sync is full.
// mutation-checked: dropping the stale-chain loop of findDrift fails "stale service
// chain" and "too many chains drifted"; dropping the hook check fails "hook jump
// deleted"; dropping the canary check fails "canary deleted"; leaving the -X lines
// out of repairPayload fails "stale service chain" (tables differ); sorting a shared
// chain's trailing node-ports jump with the rest (slices.Sort(out)) fails "node-ports
// jump moved up"; a maxRepairChains of 1e6 fails "too many chains drifted";
// remembering verified chains by their rendered text alone (verifiedPair{rendered,
// 0}) fails every repair case, since the check before the tampering saw the same
// render.
func TestCheckRepairsDrift(t *testing.T) {
	manyStale := func(f *checkFixture) string {
		var b strings.Builder
		b.WriteString("*nat\n")
		for i := range maxRepairChains + 1 {
			fmt.Fprintf(&b, ":KUBE-SEP-STALE%06d - [0:0]\n", i)
		}
		b.WriteString("COMMIT\n")
		return b.String()
	}
	for _, tc := range []struct {
		name string
		// tamper returns a restore payload that changes the fake's tables.
		tamper      func(f *checkFixture) string
		wantDrifted func(f *checkFixture) []string
		// wantFull is the start of the full-sync reason expected instead of a repair.
		wantFull string
	}{{
		name: "rule deleted from a service chain",
		tamper: func(f *checkFixture) string {
			svc := firstChain(t, f.fake, PrefixServiceCluster)
			rule := f.fake.Ruleset().Chain("nat", svc).Rules[0].String()
			return "*nat\n-D " + svc + " " + rule + "\nCOMMIT\n"
		},
		wantDrifted: func(f *checkFixture) []string { return []string{"nat/" + firstChain(t, f.fake, PrefixServiceCluster)} },
	}, {
		name: "endpoint chain flushed",
		tamper: func(f *checkFixture) string {
			return "*nat\n:" + firstChain(t, f.fake, PrefixEndpoint) + " - [0:0]\nCOMMIT\n"
		},
		wantDrifted: func(f *checkFixture) []string { return []string{"nat/" + firstChain(t, f.fake, PrefixEndpoint)} },
	}, {
		name: "rule added to a fixed chain",
		tamper: func(*checkFixture) string {
			return "*nat\n-A KUBE-MARK-MASQ -j ACCEPT\nCOMMIT\n*filter\n-A KUBE-FORWARD -j ACCEPT\nCOMMIT\n"
		},
		wantDrifted: func(*checkFixture) []string { return []string{"filter/KUBE-FORWARD", "nat/KUBE-MARK-MASQ"} },
	}, {
		name: "service rule deleted from a shared chain",
		tamper: func(f *checkFixture) string {
			rule := f.fake.Ruleset().Chain("nat", ChainServices).Rules[0].String()
			return "*nat\n-D KUBE-SERVICES " + rule + "\nCOMMIT\n"
		},
		wantDrifted: func(*checkFixture) []string { return []string{"nat/KUBE-SERVICES"} },
	}, {
		name: "node-ports jump moved up",
		tamper: func(f *checkFixture) string {
			rules := f.fake.Ruleset().Chain("nat", ChainServices).Rules
			last := rules[len(rules)-1].String()
			return "*nat\n-D KUBE-SERVICES " + last + "\n-I KUBE-SERVICES 1 " + last + "\nCOMMIT\n"
		},
		wantDrifted: func(*checkFixture) []string { return []string{"nat/KUBE-SERVICES"} },
	}, {
		name: "stale service chain",
		tamper: func(*checkFixture) string {
			return "*nat\n:KUBE-SEP-STALEONE - [0:0]\n-A KUBE-SEP-STALEONE -j ACCEPT\nCOMMIT\n"
		},
		wantDrifted: func(*checkFixture) []string { return []string{"nat/KUBE-SEP-STALEONE"} },
	}, {
		name:     "too many chains drifted",
		tamper:   manyStale,
		wantFull: proxy.ReasonDrift + ": 1001 chains drifted",
	}, {
		name: "hook jump deleted",
		tamper: func(*checkFixture) string {
			return `*nat
-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
`
		},
		wantFull: reasonHooksMissing,
	}, {
		name:     "canary deleted",
		tamper:   func(*checkFixture) string { return "*filter\n-X KUBE-PROXY-CANARY\nCOMMIT\n" },
		wantFull: reasonCanaryMissing,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newCheckFixture(t, nil)
			// A first check remembers every chain as verified: the tampering must
			// be seen through that memory.
			if res, err := f.p.CheckPeriodic(ctx); err != nil || len(res.Drifted) != 0 {
				t.Fatalf("check before tampering: drifted %v, err %v", res.Drifted, err)
			}
			if err := f.fake.Restore(ctx, []byte(tc.tamper(f))); err != nil {
				t.Fatalf("tampering: %v", err)
			}
			var want []string
			if tc.wantDrifted != nil {
				want = tc.wantDrifted(f)
			}
			restores := len(f.fake.Restores())
			res, err := f.p.CheckPeriodic(ctx)
			if err != nil {
				t.Fatal(err)
			}
			written := len(f.fake.Restores()) - restores
			if tc.wantFull != "" {
				if !strings.HasPrefix(res.FullSyncReason, tc.wantFull) || written != 0 {
					t.Fatalf("check: full sync %q after %d restores, want %q and none", res.FullSyncReason, written, tc.wantFull)
				}
				sync, err := f.p.Sync(ctx, f.tracker.Snapshot())
				if err != nil || !sync.Full || sync.Reason != res.FullSyncReason {
					t.Fatalf("next sync: full=%v reason %q err=%v, want full with the check's reason", sync.Full, sync.Reason, err)
				}
			} else {
				if diff := cmp.Diff(want, res.Drifted); diff != "" {
					t.Errorf("drifted chains (-want +got):\n%s", diff)
				}
				if !res.Repaired || written != 1 || res.FullSyncReason != "" {
					t.Errorf("check: repaired %v in %d restores, full sync %q; want one restore and no full sync", res.Repaired, written, res.FullSyncReason)
				}
				if written > 0 {
					repair := string(f.fake.Restores()[len(f.fake.Restores())-1])
					for _, c := range want {
						if !strings.Contains(repair, ":"+c[strings.Index(c, "/")+1:]+" ") {
							t.Errorf("the repair does not declare %s:\n%s", c, repair)
						}
					}
				}
			}
			if diff := cmp.Diff(fullRender(t, f.snap), canonicalTables(t, f.fake.Ruleset())); diff != "" {
				t.Errorf("after the check (and the sync it asked for) the tables differ from a full render (-full +kernel):\n%s", diff)
			}
			// A second check finds nothing left to do.
			if res, err := f.p.CheckPeriodic(ctx); err != nil || len(res.Drifted) != 0 || res.FullSyncReason != "" {
				t.Errorf("second check: drifted %v, full sync %q, err %v; want nothing", res.Drifted, res.FullSyncReason, err)
			}
		})
	}
}

// syncDuringSave is a kernel whose first read of the nat table runs a sync first, as
// if the sync had run between the check's reads: the table the check reads holds
// the newer snapshot for the changed service while the check's base is the older one.
type syncDuringSave struct {
	*xtablestest.Fake
	during func()
}

func (s *syncDuringSave) SaveTable(ctx context.Context, table xtables.Table) ([]byte, error) {
	if table == xtables.TableFilter && s.during != nil {
		during := s.during
		s.during = nil
		out, err := s.Fake.SaveTable(ctx, table)
		during()
		return out, err
	}
	return s.Fake.SaveTable(ctx, table)
}

// TestCheckLeavesOutServicesChangedWhileRead checks that a service port a partial sync
// changed while the check read the kernel is neither reported as drift nor rewritten:
// the filter table was read before the sync, the nat table after, so the two disagree
// about it. The next check, with nothing changing, compares it too and finds nothing.
// mutation-checked: passing excluded{} instead of changedServices(...) to findDrift
// fails it (drifted [filter/KUBE-EXTERNAL-SERVICES ...] and a repair restore).
func TestCheckLeavesOutServicesChangedWhileRead(t *testing.T) {
	ctx := context.Background()
	var kernel *syncDuringSave
	f := newCheckFixture(t, func(fake *xtablestest.Fake) xtables.Interface {
		kernel = &syncDuringSave{Fake: fake}
		return kernel
	})
	kernel.during = func() {
		// web loses its endpoints: its cluster IP now REJECTs, in filter.
		feed(t, f.tracker, makeSlice("ns", "web", "web-1", 8080))
		f.snap = f.tracker.Snapshot()
		if res, err := f.p.Sync(ctx, f.snap); err != nil || res.Full {
			t.Errorf("sync during the check: full=%v err=%v", res.Full, err)
		}
	}
	restores := len(f.fake.Restores())
	res, err := f.p.CheckPeriodic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kernel.during != nil {
		t.Fatal("the sync did not run during the check")
	}
	if got := len(f.fake.Restores()) - restores; len(res.Drifted) != 0 || got != 1 || res.FullSyncReason != "" || res.Skipped != "" {
		t.Errorf("check: drifted %v, %d restores (want 1: the sync's), full sync %q, skipped %q", res.Drifted, got, res.FullSyncReason, res.Skipped)
	}
	if !slices.Contains(res.Details, any("changedWhileRead")) {
		t.Errorf("details %v lack changedWhileRead", res.Details)
	}
	if res, err := f.p.CheckPeriodic(ctx); err != nil || len(res.Drifted) != 0 || res.Compared == 0 {
		t.Errorf("second check: compared %d, drifted %v, err %v", res.Compared, res.Drifted, err)
	}
	if diff := cmp.Diff(fullRender(t, f.snap), canonicalTables(t, f.fake.Ruleset())); diff != "" {
		t.Errorf("tables differ from a full render (-full +kernel):\n%s", diff)
	}
}
