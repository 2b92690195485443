// Package testing has a fake conntrack table for unit tests.
package testing

import (
	"context"
	"sync"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/fault"
)

// Fake is an in-memory conntrack table. It is safe for concurrent use, and its zero
// value is an empty table. FailNext("DeleteStale", err) makes the next DeleteStale
// fail with err, deleting nothing.
type Fake struct {
	mu     sync.Mutex
	flows  []conntrack.Flow
	scans  int
	once   sync.Once
	faults *fault.Injector
}

// Scans returns how many times the table was read (DeleteStale calls): a sync whose
// changes touch no UDP service must not read it at all.
func (f *Fake) Scans() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scans
}

// FailNext makes the next call of op (only "DeleteStale") fail with err.
func (f *Fake) FailNext(op string, err error) { f.injector().FailNext(op, err) }

// Pending returns how many injected failures of op are still to come.
func (f *Fake) Pending(op string) int { return f.injector().Pending(op) }

// Take is called by each operation; see fault.Injector.Take.
func (f *Fake) Take(op string) error { return f.injector().Take(op) }

func (f *Fake) injector() *fault.Injector {
	f.once.Do(func() { f.faults = fault.New("DeleteStale") })
	return f.faults
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

// DeleteStale implements conntrack.Interface. Like the kernel's filtered dumps, it
// reads only the entries of family that one of filter.Dumps(family) selects, and
// deletes those filter.Match selects.
func (f *Fake) DeleteStale(ctx context.Context, family v1.IPFamily, filter *conntrack.StaleUDP) (conntrack.Result, error) {
	var res conntrack.Result
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := f.Take("DeleteStale"); err != nil {
		return res, err
	}
	dumps := filter.Dumps(family)
	read := func(fl conntrack.Flow) bool {
		if fl.Protocol != v1.ProtocolUDP || endpoints.FamilyOf(fl.OrigDst.Addr()) != family {
			return false
		}
		for _, d := range dumps {
			if d.Port == fl.OrigDst.Port() && (!d.Addr.IsValid() || d.Addr == fl.OrigDst.Addr()) {
				return true
			}
		}
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scans++
	res.Dumps = len(dumps)
	kept := f.flows[:0]
	for _, fl := range f.flows {
		if !read(fl) {
			kept = append(kept, fl)
			continue
		}
		res.Read++
		if filter.Match(fl) {
			res.Deleted++
			continue
		}
		kept = append(kept, fl)
	}
	f.flows = kept
	return res, nil
}
