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
