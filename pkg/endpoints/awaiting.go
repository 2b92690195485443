package endpoints

import "k8s.io/apimachinery/pkg/types"

// AwaitsEndpoints reports whether Service key is new since the last snapshot (none of
// its ports has been synced) and has no EndpointSlice yet. A sync now would program
// nothing for it that traffic can use, only the reject rule of a service without
// endpoints, and its slice usually follows within milliseconds: the EndpointSlice
// controller writes one, empty if no pod matches, for every Service with a selector.
// The controller lets such a Service wait for its slice instead of spending the
// minimum sync interval on it (see docs/engine.md, "A new service").
func (t *Tracker) AwaitsEndpoints(key types.NamespacedName) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.services[key]; !ok {
		return false // deleted, or nothing to program: no reason to wait
	}
	if _, synced := t.portsOf[key]; synced {
		return false // a change to a programmed Service is programmed at once
	}
	return len(t.slices[key]) == 0
}
