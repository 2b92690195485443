package proxy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// fakeClock is a settable clock for SyncState.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// service returns a one-port ClusterIP Service named name.
func service(name string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{ClusterIP: "172.30.0.10", ClusterIPs: []string{"172.30.0.10"},
			Ports: []v1.ServicePort{{Name: "p", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
}

func port(name string) endpoints.ServicePortName {
	return endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}, Port: "p", Protocol: v1.ProtocolTCP}
}

// TestSyncState walks the state machine through the events of a Provider's life: each
// step is an action, then the decision the next Begin makes.
func TestSyncState(t *testing.T) {
	const period = time.Hour
	type step struct {
		name string
		// do runs before Begin: it changes the tracker, the clock or the state.
		do          func(tr *endpoints.Tracker, clock *fakeClock, s *SyncState)
		extraSnaps  int  // snapshots taken and thrown away before the synced one
		fail        bool // the sync fails
		wantReason  string
		wantChanged []endpoints.ServicePortName
	}
	update := func(name string) func(*endpoints.Tracker, *fakeClock, *SyncState) {
		return func(tr *endpoints.Tracker, _ *fakeClock, _ *SyncState) { _ = tr.OnServiceUpdate(service(name)) }
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{{
		name: "start, then partial syncs of what changed",
		steps: []step{
			{name: "first", do: update("a"), wantReason: ReasonStart},
			{name: "one change", do: update("b"), wantChanged: []endpoints.ServicePortName{port("b")}},
			{name: "nothing", wantChanged: []endpoints.ServicePortName{}},
		},
	}, {
		// mutation-checked: deciding full when snap.Generation != applied.Generation+1
		// (the old rule) fails this case.
		name: "extra snapshots between syncs stay partial and keep their changes",
		steps: []step{
			{name: "first", wantReason: ReasonStart},
			{name: "changes across two extra snapshots", do: update("a"), extraSnaps: 2,
				wantChanged: []endpoints.ServicePortName{port("a")}},
		},
	}, {
		name: "a failure makes the next sync full, then partial again",
		steps: []step{
			{name: "first", wantReason: ReasonStart},
			{name: "fails", do: update("a"), fail: true, wantChanged: []endpoints.ServicePortName{port("a")}},
			{name: "after the failure", do: update("b"), wantReason: ReasonFailed},
			{name: "then", do: update("c"), wantChanged: []endpoints.ServicePortName{port("c")}},
		},
	}, {
		name: "a request wins once, with its reason",
		steps: []step{
			{name: "first", wantReason: ReasonStart},
			{name: "requested", do: func(_ *endpoints.Tracker, _ *fakeClock, s *SyncState) { s.RequestFull("canary gone") }, wantReason: "canary gone"},
			{name: "then", wantChanged: []endpoints.ServicePortName{}},
		},
	}, {
		// mutation-checked: setting lastFull at every success (not only full ones)
		// never reaches the period here and fails the "periodic" step.
		name: "periodic",
		steps: []step{
			{name: "first", wantReason: ReasonStart},
			{name: "before the period", do: func(_ *endpoints.Tracker, c *fakeClock, _ *SyncState) { c.t = c.t.Add(period / 2) }, wantChanged: []endpoints.ServicePortName{}},
			{name: "at the period", do: func(_ *endpoints.Tracker, c *fakeClock, _ *SyncState) { c.t = c.t.Add(period / 2) }, wantReason: ReasonPeriodic},
			{name: "after", wantChanged: []endpoints.ServicePortName{}},
		},
	}, {
		name: "beyond the snapshot history",
		steps: []step{
			{name: "first", wantReason: ReasonStart},
			{name: "many extra snapshots", extraSnaps: 40, wantReason: ReasonHistory},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := endpoints.NewTracker("node1")
			clock := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
			s := NewSyncState(period, clock.now)
			for _, st := range tc.steps {
				if st.do != nil {
					st.do(tr, clock, s)
				}
				for range st.extraSnaps {
					tr.Snapshot()
				}
				snap := tr.Snapshot()
				d := s.Begin(snap)
				if d.Reason != st.wantReason || d.Full != (st.wantReason != "") {
					t.Fatalf("%s: full=%v reason %q, want %q", st.name, d.Full, d.Reason, st.wantReason)
				}
				if !d.Full {
					if diff := cmp.Diff(st.wantChanged, d.Changed, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("%s: changed (-want +got):\n%s", st.name, diff)
					}
					if d.Base == nil {
						t.Errorf("%s: a partial sync without a base", st.name)
					}
				}
				if s.Applied() != nil {
					t.Errorf("%s: during a sync the applied state must be unknown", st.name)
				}
				if st.fail {
					s.Failed()
				} else {
					s.Succeeded(snap)
					if s.Applied() != snap {
						t.Errorf("%s: applied is not the synced snapshot", st.name)
					}
				}
			}
		})
	}
}

// TestSyncStateRequestDuringSync checks that a full sync requested while a sync runs
// (the canary watcher runs concurrently) applies to the next sync, not the current.
func TestSyncStateRequestDuringSync(t *testing.T) {
	tr := endpoints.NewTracker("node1")
	s := NewSyncState(0, nil)
	first := tr.Snapshot()
	s.Begin(first)
	s.Succeeded(first)
	snap := tr.Snapshot()
	if d := s.Begin(snap); d.Full {
		t.Fatalf("second sync full: %s", d.Reason)
	}
	s.RequestFull("canary gone")
	s.Succeeded(snap)
	if d := s.Begin(tr.Snapshot()); d.Reason != "canary gone" {
		t.Errorf("reason = %q, want the request made during the previous sync", d.Reason)
	}
}

// TestSyncStateStatus checks what Status reports through a Provider's life: the
// applied snapshot, the last full sync's start, and the reason the next sync will be
// full, including a periodic one that has come due.
// mutation-checked: returning needFull only (no periodic check) fails "period over".
func TestSyncStateStatus(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)}
	s := NewSyncState(time.Hour, clock.now)
	tracker := endpoints.NewTracker("node1")
	type want struct {
		generation uint64 // of Applied, 0 for nil
		lastFull   time.Time
		next       string
	}
	check := func(t *testing.T, w want) {
		t.Helper()
		st := s.Status()
		var got want
		if st.Applied != nil {
			got.generation = st.Applied.Generation
		}
		got.lastFull, got.next = st.LastFull, st.NextFullReason
		if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	}
	start := clock.t
	t.Run("new", func(t *testing.T) { check(t, want{next: ReasonStart}) })
	t.Run("full sync done", func(t *testing.T) {
		snap := tracker.Snapshot()
		s.Begin(snap)
		check(t, want{}) // during the sync: nothing known applied, nothing requested
		s.Succeeded(snap)
		check(t, want{generation: 1, lastFull: start})
	})
	t.Run("requested", func(t *testing.T) {
		s.RequestFull("asked")
		check(t, want{generation: 1, lastFull: start, next: "asked"})
		snap := tracker.Snapshot()
		clock.t = clock.t.Add(time.Minute)
		s.Begin(snap)
		s.Succeeded(snap)
		check(t, want{generation: 2, lastFull: start.Add(time.Minute)})
	})
	t.Run("failed", func(t *testing.T) {
		s.Begin(tracker.Snapshot())
		s.Failed()
		check(t, want{lastFull: start.Add(time.Minute), next: ReasonFailed})
		snap := tracker.Snapshot()
		s.Begin(snap)
		s.Succeeded(snap)
	})
	t.Run("period over", func(t *testing.T) {
		clock.t = clock.t.Add(time.Hour)
		check(t, want{generation: 4, lastFull: start.Add(time.Minute), next: ReasonPeriodic})
	})
}
