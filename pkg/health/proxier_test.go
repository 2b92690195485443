package health

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProxierHealth(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	h := NewProxierHealth(time.Minute, clock.now)

	get := func(handler http.Handler) (int, Status) {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var st Status
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
		return rec.Code, st
	}
	expect := func(step string, handler http.Handler, want int) {
		t.Helper()
		if code, st := get(handler); code != want {
			t.Errorf("%s: status %d (%q), want %d", step, code, st.Reason, want)
		}
	}

	expect("before the first sync", h.HealthzHandler(), http.StatusServiceUnavailable)
	h.QueuedUpdate()
	start := clock.t
	clock.t = clock.t.Add(time.Second)
	h.Updated(start)
	expect("after the first sync", h.HealthzHandler(), http.StatusOK)
	expect("livez after the first sync", h.LivezHandler(), http.StatusOK)

	clock.t = clock.t.Add(time.Second)
	h.QueuedUpdate()
	clock.t = clock.t.Add(30 * time.Second)
	expect("change pending within the timeout", h.HealthzHandler(), http.StatusOK)
	clock.t = clock.t.Add(31 * time.Second)
	expect("change pending past the timeout (syncs keep failing)", h.HealthzHandler(), http.StatusServiceUnavailable)
	expect("livez with a change pending past the timeout", h.LivezHandler(), http.StatusServiceUnavailable)

	h.Updated(clock.t)
	expect("after a successful sync", h.HealthzHandler(), http.StatusOK)

	// A change queued while a sync runs is not covered by that sync.
	syncStart := clock.t
	clock.t = clock.t.Add(time.Second)
	h.QueuedUpdate()
	h.Updated(syncStart)
	clock.t = clock.t.Add(2 * time.Minute)
	expect("change queued during the last sync, never applied", h.HealthzHandler(), http.StatusServiceUnavailable)
	h.Updated(clock.t)

	h.SetNodeDeleting(true)
	expect("node being deleted: healthz", h.HealthzHandler(), http.StatusServiceUnavailable)
	expect("node being deleted: livez", h.LivezHandler(), http.StatusOK)
}
