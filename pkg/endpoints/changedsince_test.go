package endpoints

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	discovery "k8s.io/api/discovery/v1"
)

// TestChangedSince checks that a snapshot answers "what changed since the one you
// applied", whatever snapshots were taken in between, so that an extra Snapshot call
// neither loses a change nor forces a full sync.
func TestChangedSince(t *testing.T) {
	apiHTTP := spn("shop", "api", "http", "TCP")
	tr := NewTracker(thisNode)
	mustUpdateService(t, tr, makeService("shop", "web"))
	applied := tr.Snapshot() // generation 1: what a proxier applied

	mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}))
	extra := tr.Snapshot() // generation 2: taken by someone else, never applied
	mustUpdateService(t, tr, makeService("shop", "api"))
	latest := tr.Snapshot() // generation 3

	for _, tc := range []struct {
		name   string
		base   *Snapshot
		want   map[ServicePortName]struct{}
		wantOK bool
	}{
		// mutation-checked: returning latest.Changed for every base fails this case.
		{name: "across an extra snapshot", base: applied, want: changed(webHTTP, apiHTTP), wantOK: true},
		{name: "the previous snapshot", base: extra, want: changed(apiHTTP), wantOK: true},
		{name: "itself", base: latest, want: changed(), wantOK: true},
		{name: "nil base", base: nil, wantOK: false},
		{name: "newer base", base: &Snapshot{Generation: latest.Generation + 1}, wantOK: false},
		{name: "from before the first snapshot", base: &Snapshot{}, want: changed(webHTTP, apiHTTP), wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := latest.ChangedSince(tc.base)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if diff := cmp.Diff(tc.want, got, cmpOpts...); ok && diff != "" {
				t.Errorf("ChangedSince (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChangedSinceHistoryBound checks that the history is bounded and a base just
// inside it still answers.
func TestChangedSinceHistoryBound(t *testing.T) {
	tr := NewTracker(thisNode)
	first := tr.Snapshot()
	var last *Snapshot
	for range historyLength {
		last = tr.Snapshot()
	}
	if _, ok := last.ChangedSince(first); !ok {
		t.Errorf("a base %d generations back is within the history of %d", last.Generation-first.Generation, historyLength)
	}
	last = tr.Snapshot()
	if _, ok := last.ChangedSince(first); ok {
		t.Errorf("a base %d generations back is beyond the history of %d", last.Generation-first.Generation, historyLength)
	}
	if n := len(last.history); n > historyLength {
		t.Errorf("history holds %d generations, want at most %d", n, historyLength)
	}
}

func TestPendingChanges(t *testing.T) {
	tr := NewTracker(thisNode)
	mustUpdateService(t, tr, makeService("shop", "web"))
	mustUpdateService(t, tr, makeService("shop", "web")) // the same Service twice counts once
	mustUpdateSlice(t, tr, makeSlice("shop", "api", "api-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}))
	mustUpdateSlice(t, tr, makeSlice("shop", "api", "api-1", []discovery.Endpoint{makeEndpoint("10.244.1.6", "node-a")}))
	tr.OnEndpointSliceDelete(makeSlice("shop", "api", "api-1", nil))
	if svcs, eps := tr.PendingChanges(); svcs != 1 || eps != 3 {
		t.Errorf("pending before the snapshot = %d services, %d slice events; want 1, 3", svcs, eps)
	}
	tr.Snapshot()
	if svcs, eps := tr.PendingChanges(); svcs != 0 || eps != 0 {
		t.Errorf("pending after the snapshot = %d services, %d endpoints; want 0, 0", svcs, eps)
	}
}
