// Package health serves the proxy's own health (/healthz, /livez, with kube-proxy's
// semantics) and the per-service health checks that load balancers probe on
// healthCheckNodePort for externalTrafficPolicy Local services.
package health

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// ProxierHealth tracks whether the proxy keeps the kernel up to date. It is healthy
// once the first sync succeeded, for as long as every queued change is applied within
// the timeout. A proxy that cannot write its rules (a stuck xtables lock, a failing
// restore) goes red instead of staying green for days (kubernetes#57428). Safe for
// concurrent use.
type ProxierHealth struct {
	timeout time.Duration
	now     func() time.Time

	mu           sync.Mutex
	lastUpdated  time.Time // last successful sync
	oldestQueued time.Time // oldest change not yet applied; zero when none
	nodeDeleting bool
}

// NewProxierHealth returns a ProxierHealth with the given timeout (kube-proxy's
// --healthz timeout is twice the sync period) and clock (nil means time.Now).
func NewProxierHealth(timeout time.Duration, now func() time.Time) *ProxierHealth {
	if now == nil {
		now = time.Now
	}
	return &ProxierHealth{timeout: timeout, now: now}
}

// QueuedUpdate records that a change is waiting to be applied.
func (h *ProxierHealth) QueuedUpdate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.oldestQueued.IsZero() {
		h.oldestQueued = h.now()
	}
}

// Updated records a successful sync that applied every change queued before it
// started (at syncStart).
func (h *ProxierHealth) Updated(syncStart time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastUpdated = h.now()
	if !h.oldestQueued.After(syncStart) {
		h.oldestQueued = time.Time{}
	}
}

// SetNodeDeleting records whether this node's Node object is being deleted; /healthz
// then fails so that load balancers drain the node.
func (h *ProxierHealth) SetNodeDeleting(deleting bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodeDeleting = deleting
}

// Status is the JSON body of /healthz and /livez, as kube-proxy prints it.
type Status struct {
	LastUpdated  time.Time `json:"lastUpdated"`
	CurrentTime  time.Time `json:"currentTime"`
	NodeEligible *bool     `json:"nodeEligible,omitempty"`
	// Reason says why the proxy is unhealthy; empty when healthy.
	Reason string `json:"reason,omitempty"`
}

// Healthy reports the proxy's health and why.
func (h *ProxierHealth) Healthy() (bool, Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	st := Status{LastUpdated: h.lastUpdated, CurrentTime: now}
	switch {
	case h.lastUpdated.IsZero():
		st.Reason = "no successful sync yet"
	case !h.oldestQueued.IsZero() && now.Sub(h.oldestQueued) > h.timeout:
		st.Reason = "changes queued at " + h.oldestQueued.UTC().Format(time.RFC3339) + " are not applied yet"
	}
	return st.Reason == "", st
}

// HealthzHandler serves /healthz: healthy and the node not being deleted.
func (h *ProxierHealth) HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, st := h.Healthy()
		h.mu.Lock()
		eligible := !h.nodeDeleting
		h.mu.Unlock()
		st.NodeEligible = &eligible
		if ok && !eligible {
			ok, st.Reason = false, "node is being deleted"
		}
		writeStatus(w, ok, st)
	})
}

// LivezHandler serves /livez: healthy, whatever the node's state.
func (h *ProxierHealth) LivezHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, st := h.Healthy()
		writeStatus(w, ok, st)
	})
}

func writeStatus(w http.ResponseWriter, ok bool, st Status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if ok {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}
