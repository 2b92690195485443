package endpoints

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Tracker turns Service and EndpointSlice events into Snapshots. Event handlers only
// record the new object and mark its Service dirty; all merging and comparing happens in
// Snapshot, once per sync, for the dirty Services only. That keeps informer callbacks
// cheap and makes a sync's cost proportional to what changed.
//
// A Tracker is safe for concurrent use.
type Tracker struct {
	nodeName string

	mu sync.Mutex
	// services holds the converted ports of every known Service.
	services map[types.NamespacedName][]*ServicePort
	// slices holds every EndpointSlice, by its Service and then by slice name.
	slices map[types.NamespacedName]map[string]*sliceInfo
	// sliceOwner records which Service each slice (by namespace/name) is filed under,
	// so that a slice whose service-name label changes or disappears is removed
	// from its old Service, and a delete finds it whatever labels it carries.
	sliceOwner map[types.NamespacedName]types.NamespacedName
	// dirty holds the Services touched since the last snapshot.
	dirty map[types.NamespacedName]struct{}
	// dirtyServices holds the Services whose Service object was touched since the
	// last snapshot, and sliceEvents counts the EndpointSlice events since then, for
	// kube-proxy's *_changes_pending metrics (which count the same things).
	dirtyServices map[types.NamespacedName]struct{}
	sliceEvents   int
	// triggerTimes holds the earliest trigger time per dirty Service.
	triggerTimes map[types.NamespacedName]time.Time
	// last is the previous snapshot; the next one starts from it.
	last *Snapshot
	// portsOf indexes last.Services by Service, so a dirty Service's old ports are
	// found without scanning every port.
	portsOf map[types.NamespacedName][]ServicePortName
}

// NewTracker returns an empty Tracker for the node with the given name; the name decides
// which copy of a duplicated endpoint address wins.
func NewTracker(nodeName string) *Tracker {
	return &Tracker{
		nodeName:      nodeName,
		services:      map[types.NamespacedName][]*ServicePort{},
		slices:        map[types.NamespacedName]map[string]*sliceInfo{},
		sliceOwner:    map[types.NamespacedName]types.NamespacedName{},
		dirty:         map[types.NamespacedName]struct{}{},
		dirtyServices: map[types.NamespacedName]struct{}{},
		triggerTimes:  map[types.NamespacedName]time.Time{},
		last: &Snapshot{
			Services:  map[ServicePortName]*ServicePort{},
			Endpoints: map[ServicePortName][]*Endpoint{},
		},
		portsOf: map[types.NamespacedName][]ServicePortName{},
	}
}

// OnServiceUpdate records a Service that was added or changed. It returns the
// conversion errors (bad IPs, bad ports); the usable parts are tracked regardless.
func (t *Tracker) OnServiceUpdate(svc *v1.Service) error {
	ports, err := ServicePorts(svc)
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(ports) == 0 {
		delete(t.services, key)
	} else {
		t.services[key] = ports
	}
	t.dirty[key] = struct{}{}
	t.dirtyServices[key] = struct{}{}
	return err
}

// OnServiceDelete records that a Service is gone.
func (t *Tracker) OnServiceDelete(svc *v1.Service) {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.services, key)
	t.dirty[key] = struct{}{}
	t.dirtyServices[key] = struct{}{}
}

// OnEndpointSliceUpdate records an EndpointSlice that was added or changed. It returns
// an error for a slice without a service label (which is then dropped, with any copy
// filed under a Service before) and for invalid addresses (which are skipped).
func (t *Tracker) OnEndpointSliceUpdate(slice *discovery.EndpointSlice) error {
	sliceKey := types.NamespacedName{Namespace: slice.Namespace, Name: slice.Name}
	key, err := ServiceKeyOfSlice(slice)
	if err != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.removeSliceLocked(sliceKey)
		return err
	}
	info, convErr := convertSlice(slice)
	var trigger time.Time
	if s, ok := slice.Annotations[TriggerTimeAnnotation]; ok {
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			trigger = ts
		} else {
			convErr = errors.Join(convErr, invalid(ReasonInvalidTriggerTime, fmt.Errorf("endpointslice %s/%s: annotation %s: %w", slice.Namespace, slice.Name, TriggerTimeAnnotation, err)))
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if owner, ok := t.sliceOwner[sliceKey]; ok && owner != key {
		t.removeSliceLocked(sliceKey)
	}
	bySlice := t.slices[key]
	if bySlice == nil {
		bySlice = map[string]*sliceInfo{}
		t.slices[key] = bySlice
	}
	bySlice[slice.Name] = info
	t.sliceOwner[sliceKey] = key
	t.markDirtyLocked(key, trigger)
	t.sliceEvents++
	return convErr
}

// OnEndpointSliceDelete records that an EndpointSlice is gone.
func (t *Tracker) OnEndpointSliceDelete(slice *discovery.EndpointSlice) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeSliceLocked(types.NamespacedName{Namespace: slice.Namespace, Name: slice.Name})
	t.sliceEvents++
}

// removeSliceLocked drops a slice from the Service it is filed under, if any.
func (t *Tracker) removeSliceLocked(sliceKey types.NamespacedName) {
	owner, ok := t.sliceOwner[sliceKey]
	if !ok {
		return
	}
	delete(t.sliceOwner, sliceKey)
	if bySlice := t.slices[owner]; bySlice != nil {
		delete(bySlice, sliceKey.Name)
		if len(bySlice) == 0 {
			delete(t.slices, owner)
		}
	}
	t.markDirtyLocked(owner, time.Time{})
}

func (t *Tracker) markDirtyLocked(key types.NamespacedName, trigger time.Time) {
	t.dirty[key] = struct{}{}
	if trigger.IsZero() {
		return
	}
	if old, ok := t.triggerTimes[key]; !ok || trigger.Before(old) {
		t.triggerTimes[key] = trigger
	}
}

// Pending reports whether events arrived since the last snapshot.
func (t *Tracker) Pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.dirty) > 0
}

// PendingChanges returns how many Services have changes and how many EndpointSlice
// events arrived since the last snapshot, as kube-proxy's
// sync_proxy_rules_service_changes_pending (Services) and
// sync_proxy_rules_endpoint_changes_pending (slice events) count them.
func (t *Tracker) PendingChanges() (services, endpointSlices int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.dirtyServices), t.sliceEvents
}

// Snapshot returns the desired state now, and which service ports changed since the
// previous call. Its cost is one copy of the top-level maps plus work proportional to
// the Services that received events.
func (t *Tracker) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()

	prev := t.last
	next := &Snapshot{
		Services:     maps.Clone(prev.Services),
		Endpoints:    maps.Clone(prev.Endpoints),
		Changed:      map[ServicePortName]struct{}{},
		TriggerTimes: map[types.NamespacedName]time.Time{},
		Generation:   prev.Generation + 1,
	}
	for key := range t.dirty {
		t.refreshServiceLocked(key, next)
	}
	for key, ts := range t.triggerTimes {
		// A trigger time only matters if the change reached the rules.
		if slices.ContainsFunc(t.portsOf[key], func(n ServicePortName) bool { _, ok := next.Changed[n]; return ok }) {
			next.TriggerTimes[key] = ts
		}
	}
	keep := prev.history
	if len(keep) >= historyLength {
		keep = keep[len(keep)-historyLength+1:]
	}
	next.history = append(slices.Clone(keep), changeSet{generation: next.Generation, changed: next.Changed})
	clear(t.dirty)
	t.sliceEvents = 0
	clear(t.dirtyServices)
	clear(t.triggerTimes)
	t.last = next
	return next
}

// refreshServiceLocked recomputes one Service's ports and endpoints into next and
// records which of its ports changed compared with the previous snapshot.
func (t *Tracker) refreshServiceLocked(key types.NamespacedName, next *Snapshot) {
	oldNames := t.portsOf[key]
	newPorts := t.services[key]

	sliceList := make([]*sliceInfo, 0, len(t.slices[key]))
	for _, s := range t.slices[key] {
		sliceList = append(sliceList, s)
	}
	slices.SortFunc(sliceList, func(a, b *sliceInfo) int { return cmpString(a.name, b.name) })

	newNames := make([]ServicePortName, 0, len(newPorts))
	for _, port := range newPorts {
		name := port.Name
		newNames = append(newNames, name)
		eps := mergeEndpoints(sliceList, slicePortKey{name: name.Port, protocol: name.Protocol}, t.nodeName)
		if !port.Equal(next.Services[name]) || !endpointsEqual(eps, next.Endpoints[name]) {
			next.Changed[name] = struct{}{}
		}
		next.Services[name] = port
		if len(eps) == 0 {
			delete(next.Endpoints, name)
		} else {
			next.Endpoints[name] = eps
		}
	}
	for _, name := range oldNames {
		if slices.Contains(newNames, name) {
			continue
		}
		delete(next.Services, name)
		delete(next.Endpoints, name)
		next.Changed[name] = struct{}{}
	}
	if len(newNames) == 0 {
		delete(t.portsOf, key)
	} else {
		t.portsOf[key] = newNames
	}
}

// Latest returns the newest snapshot taken, without taking one, and the Services
// with events since it was taken (not in any snapshot yet), sorted. Unlike Snapshot
// it changes nothing, so a state dump can call it as often as it likes: taking
// snapshots would move trigger times out of the next sync's snapshot and reset the
// pending-changes counts. Before the first Snapshot it returns an empty snapshot of
// generation 0.
func (t *Tracker) Latest() (*Snapshot, []types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	dirty := slices.Collect(maps.Keys(t.dirty))
	slices.SortFunc(dirty, func(a, b types.NamespacedName) int {
		if a.Namespace != b.Namespace {
			return cmpString(a.Namespace, b.Namespace)
		}
		return cmpString(a.Name, b.Name)
	})
	return t.last, dirty
}
