package controller

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// State is the daemon's state dump, served at /debug/state on the metrics address and
// logged on SIGUSR1 (docs/debugging.md). Its JSON field names are its format; the
// types here exist so that nothing internal is marshalled by accident.
type State struct {
	// Node and Mode are this proxy's node name and proxy mode.
	Node string `json:"node"`
	Mode string `json:"mode"`
	// Time is when the dump was taken.
	Time time.Time `json:"time"`
	// Families holds one entry per IP family programmed, in the Providers' order;
	// empty until the Node's addresses are known.
	Families []FamilyState `json:"families"`
	// ChangedSinceSnapshot lists the Services ("namespace/name") with Service or
	// EndpointSlice events since Snapshot was taken: the next sync will look at them
	// (some may turn out to change nothing).
	ChangedSinceSnapshot []string `json:"changedSinceSnapshot"`
	// Snapshot is the newest snapshot taken: the desired state the last sync worked
	// from.
	Snapshot endpoints.SnapshotView `json:"snapshot"`
}

// FamilyState is one IP family's Provider: what it applied, how its syncs went, and
// what it has not applied yet.
type FamilyState struct {
	Family string `json:"family"`
	// AppliedGeneration is the generation of the snapshot known to be in the kernel;
	// 0 when unknown (before the first sync, after a failed one).
	AppliedGeneration uint64 `json:"appliedGeneration"`
	// LastSync is the last sync, successful or not; nil before the first.
	LastSync *SyncRecord `json:"lastSync"`
	// LastFullSync is the last successful full sync; nil before the first.
	LastFullSync *FullSyncRecord `json:"lastFullSync"`
	// NextFullSyncReason is why the next sync will be full, "" if it will be partial.
	NextFullSyncReason string `json:"nextFullSyncReason,omitempty"`
	// PendingServices lists the Services ("namespace/name") whose changes this family
	// has not applied: those that changed between the applied snapshot and the newest
	// one, and those with events since. PendingAll is true instead when that is
	// unknown (nothing known applied): the next sync is full and rewrites everything.
	PendingServices []string `json:"pendingServices"`
	PendingAll      bool     `json:"pendingAll,omitempty"`
	// AppliedPayload identifies what the Provider last applied (proxy.AppliedDigest).
	AppliedPayload PayloadDigest `json:"appliedPayload"`
}

// SyncRecord is one sync of one family.
type SyncRecord struct {
	// Kind is "full" or "partial"; Reason says why a full sync was full.
	Kind   string `json:"kind"`
	Reason string `json:"reason,omitempty"`
	// Generation is the snapshot the sync programmed.
	Generation uint64 `json:"generation"`
	// Time is when it ended; Duration how long it took, as Go prints durations, and
	// DurationSeconds the same as a number.
	Time            time.Time `json:"time"`
	Duration        string    `json:"duration"`
	DurationSeconds float64   `json:"durationSeconds"`
	// Error is why it failed, "" when it succeeded.
	Error string `json:"error,omitempty"`
}

// FullSyncRecord is the last successful full sync of one family.
type FullSyncRecord struct {
	Reason     string    `json:"reason"`
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
}

// PayloadDigest is proxy.AppliedDigest as JSON.
type PayloadDigest struct {
	SHA256     string `json:"sha256,omitempty"`
	Bytes      int    `json:"bytes"`
	Generation uint64 `json:"generation"`
}

// familyRecord is what the controller remembers of one family's syncs, for the dump;
// guarded by syncMu.
type familyRecord struct {
	last, lastFull *SyncRecord
}

// recordForDump remembers one family's sync for the state dump; the caller holds
// syncMu.
func (c *Controller) recordForDump(family v1.IPFamily, generation uint64, res proxy.Result, err error) {
	rec := &SyncRecord{
		Kind: res.Kind(), Reason: res.Reason, Generation: generation, Time: c.now(),
		Duration: res.Duration.String(), DurationSeconds: res.Duration.Seconds(),
	}
	if err != nil {
		rec.Error = err.Error()
	}
	if c.syncRecords == nil {
		c.syncRecords = map[v1.IPFamily]*familyRecord{}
	}
	fr := c.syncRecords[family]
	if fr == nil {
		fr = &familyRecord{}
		c.syncRecords[family] = fr
	}
	fr.last = rec
	if res.Full && err == nil {
		fr.lastFull = rec
	}
}

// State returns the state dump. It waits for a sync in progress, so that it never
// shows half of one, and collects under syncMu only references (snapshots are
// immutable) and the Providers' statuses; the JSON views are built after.
func (c *Controller) State() State {
	type family struct {
		family v1.IPFamily
		status proxy.Status
		record familyRecord
	}
	c.syncMu.Lock()
	providers, _ := c.currentProviders()
	families := make([]family, 0, len(providers))
	for _, p := range providers {
		f := family{family: p.Family(), status: p.Status()}
		if rec := c.syncRecords[p.Family()]; rec != nil {
			f.record = *rec
		}
		families = append(families, f)
	}
	// After the statuses: the newest snapshot is then at least as new as every
	// applied one.
	latest, dirty := c.tracker.Latest()
	c.syncMu.Unlock()

	state := State{
		Node: c.nodeName, Mode: c.cfg.Mode, Time: c.now(),
		Families:             []FamilyState{},
		ChangedSinceSnapshot: namespacedNames(dirty),
		Snapshot:             latest.View(),
	}
	for _, f := range families {
		fs := FamilyState{
			Family: string(f.family), NextFullSyncReason: f.status.NextFullReason,
			LastSync: f.record.last,
			AppliedPayload: PayloadDigest{SHA256: f.status.Digest.SHA256, Bytes: f.status.Digest.Bytes,
				Generation: f.status.Digest.Generation},
		}
		if f.record.lastFull != nil {
			fs.LastFullSync = &FullSyncRecord{Reason: f.record.lastFull.Reason, Generation: f.record.lastFull.Generation, Time: f.record.lastFull.Time}
		}
		if applied := f.status.Applied; applied != nil {
			fs.AppliedGeneration = applied.Generation
		}
		if changed, ok := latest.SortedChangedSince(f.status.Applied); ok {
			pending := append(endpoints.ServicesOf(changed), dirty...)
			slices.SortFunc(pending, compareServices)
			fs.PendingServices = namespacedNames(slices.Compact(pending))
		} else {
			fs.PendingAll = true
			fs.PendingServices = []string{}
		}
		state.Families = append(state.Families, fs)
	}
	return state
}

// compareServices orders Services by namespace, then name.
func compareServices(a, b types.NamespacedName) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// namespacedNames returns "namespace/name" of each Service, never nil (the JSON says
// [] rather than null).
func namespacedNames(services []types.NamespacedName) []string {
	out := make([]string, 0, len(services))
	for _, svc := range services {
		out = append(out, svc.String())
	}
	return out
}

// stateHandler serves State as indented JSON.
//
// It is served on the metrics address without --profiling, unlike /debug/pprof/:
// what it shows is what any client allowed to list Services and EndpointSlices reads
// from the API server (addresses, ports, conditions), plus sync bookkeeping; it
// reveals no credentials, and costs one pass over the snapshot (pprof's CPU profiles
// and heap dumps cost far more and expose the process's memory). kube-proxy likewise
// serves /configz on the metrics address without --profiling. The metrics address
// binds 127.0.0.1 by default.
func (c *Controller) stateHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(c.State()); err != nil {
			klog.FromContext(r.Context()).V(2).Info("Writing /debug/state", "err", err)
		}
	})
}
