// Package testing has a fake conntrack table for unit tests.
package testing

import (
	"context"
	"sync"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Fake is an in-memory conntrack table. It is safe for concurrent use.
type Fake struct {
	mu    sync.Mutex
	flows []conntrack.Flow
	scans int
}

// Scans returns how many times the table was read (DeleteFlows calls): a sync whose
// changes touch no UDP service must not read it at all.
func (f *Fake) Scans() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scans
}

var _ conntrack.Interface = &Fake{}

// Add puts flows in the table.
func (f *Fake) Add(flows ...conntrack.Flow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows = append(f.flows, flows...)
}

// Flows returns a copy of the table.
func (f *Fake) Flows() []conntrack.Flow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]conntrack.Flow(nil), f.flows...)
}

// DeleteFlows implements conntrack.Interface.
func (f *Fake) DeleteFlows(ctx context.Context, family v1.IPFamily, match func(conntrack.Flow) bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scans++
	kept := f.flows[:0]
	deleted := 0
	for _, fl := range f.flows {
		if endpoints.FamilyOf(fl.OrigDst.Addr()) == family && match(fl) {
			deleted++
			continue
		}
		kept = append(kept, fl)
	}
	f.flows = kept
	return deleted, nil
}
