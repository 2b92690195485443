package endpoints

import (
	"maps"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Snapshot is one consistent view of the desired state: every programmable service port
// and its endpoints. A Snapshot is never modified after the Tracker returns it, so a sync
// can render from it while new events arrive. Callers must not modify it either.
type Snapshot struct {
	// Services holds every service port to program.
	Services map[ServicePortName]*ServicePort
	// Endpoints holds the merged, sorted endpoints of every service port in Services
	// that has any.
	Endpoints map[ServicePortName][]*Endpoint
	// Changed holds the service ports whose ServicePort or endpoints differ from the
	// previous snapshot, including ports that were deleted. A renderer needs to rewrite
	// only these. Changes that cancelled out before the snapshot are not here.
	Changed map[ServicePortName]struct{}
	// TriggerTimes holds, per Service with a changed port, the earliest
	// last-change-trigger-time among the EndpointSlice updates folded into this
	// snapshot: the start of kube-proxy's network_programming_duration_seconds.
	TriggerTimes map[types.NamespacedName]time.Time
	// Generation counts snapshots taken from the Tracker, starting at 1.
	Generation uint64

	// history holds the Changed sets of the last snapshots up to this one (oldest
	// first, this one last), so that ChangedSince can answer for a base that is not
	// the immediately previous snapshot: an extra Snapshot call (a debug dump, a
	// failed sync of another family) must not force a full sync.
	history []changeSet
}

// changeSet is one snapshot's Changed set, by generation.
type changeSet struct {
	generation uint64
	changed    map[ServicePortName]struct{}
}

// historyLength bounds how many generations back ChangedSince can look. Beyond it a
// caller renders in full; syncs apply every snapshot or nearly every one, so a few
// generations are enough, and each entry only holds a (usually tiny) changed set.
const historyLength = 32

// ChangedSince returns the service ports whose ServicePort or endpoints may differ
// between base and s: the union of the Changed sets of every snapshot after base up
// to s. ok is false when that is unknown (base is nil, newer than s, or older than
// the history kept), and then the caller must treat every service port as changed.
//
// This is what a partial render and a scoped conntrack cleanup are computed from, so
// they are always relative to what was really applied, not to whatever snapshot the
// Tracker happened to return before s.
func (s *Snapshot) ChangedSince(base *Snapshot) (changed map[ServicePortName]struct{}, ok bool) {
	switch {
	case base == nil || base.Generation > s.Generation:
		return nil, false
	case base.Generation == s.Generation:
		return map[ServicePortName]struct{}{}, true
	case base.Generation+1 == s.Generation:
		return s.Changed, true
	}
	if len(s.history) == 0 || s.history[0].generation > base.Generation+1 {
		return nil, false
	}
	changed = map[ServicePortName]struct{}{}
	for _, cs := range s.history {
		if cs.generation > base.Generation {
			for name := range cs.changed {
				changed[name] = struct{}{}
			}
		}
	}
	return changed, true
}

// SortedChangedSince is ChangedSince in a fixed order, for deterministic renders.
func (s *Snapshot) SortedChangedSince(base *Snapshot) ([]ServicePortName, bool) {
	changed, ok := s.ChangedSince(base)
	if !ok {
		return nil, false
	}
	names := slices.Collect(maps.Keys(changed))
	slices.SortFunc(names, ServicePortName.Compare)
	return names, true
}

// SortedServices returns the service port names in a fixed order, for deterministic
// renders.
func (s *Snapshot) SortedServices() []ServicePortName {
	names := slices.Collect(maps.Keys(s.Services))
	slices.SortFunc(names, ServicePortName.Compare)
	return names
}

// SortedChanged returns the changed service port names in a fixed order.
func (s *Snapshot) SortedChanged() []ServicePortName {
	names := slices.Collect(maps.Keys(s.Changed))
	slices.SortFunc(names, ServicePortName.Compare)
	return names
}

// EndpointCount returns the number of endpoints across all service ports.
func (s *Snapshot) EndpointCount() int {
	n := 0
	for _, eps := range s.Endpoints {
		n += len(eps)
	}
	return n
}
