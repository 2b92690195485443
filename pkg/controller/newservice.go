package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// syncWindow returns how long the sync for a change to the object key (a Service, or
// with isEndpoints an EndpointSlice's Service) may wait for further changes.
//
// A new Service whose EndpointSlice has not arrived yet may wait up to the minimum sync
// interval: a sync now would give it only the reject rule of a service without
// endpoints, and would hold back its slice, which the EndpointSlice controller writes
// milliseconds later, for a whole minimum interval. kube-proxy syncs such a Service at
// once (OnServiceAdd requests a run) and its slice one minSyncPeriod after that sync
// ends, which is most of the time to a new service at scale. When the slice arrives
// its own request runs the sync at once, if the minimum interval since the last one
// has passed; if it never arrives (a Service without a selector), the reject rule is
// programmed one minimum interval late. Every other change is synced as soon as the
// minimum interval allows. See docs/engine.md, "A new service".
func (c *Controller) syncWindow(isEndpoints bool, key types.NamespacedName) time.Duration {
	if isEndpoints || !c.tracker.AwaitsEndpoints(key) {
		return 0
	}
	return c.cfg.MinSyncPeriod
}
