package iptables

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// feed gives objects to a tracker, failing the test on conversion errors.
func feed(t *testing.T, tracker *endpoints.Tracker, objects ...any) {
	t.Helper()
	for _, obj := range objects {
		var err error
		switch o := obj.(type) {
		case *v1.Service:
			err = tracker.OnServiceUpdate(o)
		case *discovery.EndpointSlice:
			err = tracker.OnEndpointSliceUpdate(o)
		default:
			t.Fatalf("unexpected object %T", obj)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestProxierExtraSnapshotStaysPartial checks that a snapshot taken and never synced
// (a debug dump, another consumer) between two syncs neither forces a full sync nor
// loses the changes it carried: the next sync is partial, writes both changes, and
// leaves the tables equal to a fresh full render.
//
// Before the fix, the Proxier required snap.Generation == applied.Generation+1 and
// made this sync full with reason "snapshot does not follow the applied one".
func TestProxierExtraSnapshotStaysPartial(t *testing.T) {
	ctx := context.Background()
	fake := xtablestest.NewFake(ruleset.IPv4)
	p, err := NewProxier(testConfig(), fake, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tracker := endpoints.NewTracker(testNode)
	feed(t, tracker, makeService("ns", "web", "172.30.0.10"), makeSlice("ns", "web", "web-1", 8080, ep{IP: "10.180.0.1", Node: testNode}))
	if res, err := p.Sync(ctx, tracker.Snapshot()); err != nil || !res.Full {
		t.Fatalf("first sync: full=%v err=%v, want a full sync", res.Full, err)
	}

	// One change lands in a snapshot nobody syncs, a second in the next one.
	feed(t, tracker, makeSlice("ns", "web", "web-1", 8080, ep{IP: "10.180.0.1", Node: testNode}, ep{IP: "10.180.0.2", Node: testNode}))
	tracker.Snapshot()
	feed(t, tracker, makeService("ns", "api", "172.30.0.11"), makeSlice("ns", "api", "api-1", 8080, ep{IP: "10.180.0.3", Node: testNode}))
	snap := tracker.Snapshot()
	res, err := p.Sync(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if res.Full {
		t.Fatalf("the sync after an extra snapshot was full (%s), want partial", res.Reason)
	}
	restores := fake.Restores()
	last := string(restores[len(restores)-1])
	for _, want := range []string{"10.180.0.2:8080", "10.180.0.3:8080"} {
		if !strings.Contains(last, want) {
			t.Errorf("the partial payload lacks %s (a change of the unsynced snapshot or of this one):\n%s", want, last)
		}
	}

	// A fresh Proxier's full sync of the same snapshot into an empty kernel.
	fresh := xtablestest.NewFake(ruleset.IPv4)
	freshProxier, err := NewProxier(testConfig(), fresh, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := freshProxier.Sync(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(canonicalTables(t, fresh.Ruleset()), canonicalTables(t, fake.Ruleset())); diff != "" {
		t.Errorf("after the partial sync the tables differ from a full render (-full +partial):\n%s", diff)
	}
}

// TestCanaryIgnoredBeforeTheFirstSync checks that the canary check reports nothing
// wrong while no sync has applied anything (the first sync, full anyway, may still be
// running), and reports a flushed table once one has.
// mutation-checked: removing the Applied() == nil guard in CheckKernel fails the
// first check here, and made TestDaemonInVM's dry-run --diff subtest flaky: a canary
// check during the 16 s first sync in the emulated guest queued a second full sync,
// which re-added a real server the test had just deleted.
func TestCanaryIgnoredBeforeTheFirstSync(t *testing.T) {
	ctx := context.Background()
	fake := xtablestest.NewFake(ruleset.IPv4)
	p, err := NewProxier(testConfig(), fake, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.CheckKernel(ctx); err != nil || !ok {
		t.Fatalf("before the first sync: CheckKernel = %v, %v; want true (nothing applied to check)", ok, err)
	}
	tracker := endpoints.NewTracker(testNode)
	feed(t, tracker, makeService("ns", "web", "172.30.0.10"))
	if _, err := p.Sync(ctx, tracker.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.CheckKernel(ctx); err != nil || !ok {
		t.Fatalf("after the first sync: CheckKernel = %v, %v; want true", ok, err)
	}
	if err := fake.RestoreWithFlags(ctx, []byte("*mangle\nCOMMIT\n"), xtablestest.RestoreFlags{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.CheckKernel(ctx); err != nil || ok {
		t.Fatalf("after the canary table was flushed: CheckKernel = %v, %v; want false", ok, err)
	}
}
