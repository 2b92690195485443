package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// problemKey names one object: its kind and namespace/name.
type problemKey struct {
	kind string
	name types.NamespacedName
}

// problemLog remembers the problem last reported for each object, so that each
// problem object gets one Warning Event and one increment of
// switchyard_invalid_objects_total, not one per informer resync (every
// --config-sync-period) or per unrelated update: an Event per resync would be noise
// in kubectl describe, and a counter that grows with time would make an alert on it
// meaningless. A changed problem (another bad value) is reported again; an object
// that becomes valid, or is deleted, is forgotten, so a later problem is new.
//
// A problemLog is safe for concurrent use.
type problemLog struct {
	mu       sync.Mutex
	reported map[problemKey]string
}

func newProblemLog() *problemLog {
	return &problemLog{reported: map[problemKey]string{}}
}

// observe records the object's current problem (empty: none) and reports whether it
// is new: not the one already reported for this object.
func (p *problemLog) observe(key problemKey, problem string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if problem == "" {
		delete(p.reported, key)
		return false
	}
	if p.reported[key] == problem {
		return false
	}
	p.reported[key] = problem
	return true
}

// forget drops a deleted object.
func (p *problemLog) forget(key problemKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.reported, key)
}
