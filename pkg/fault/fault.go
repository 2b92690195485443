// Package fault is the fault injection the strict fakes share, so that every fake of
// a kernel seam fails on demand the same way: fake.FailNext("Restore", err) makes the
// next Restore return err without changing anything, and the call after it succeeds
// again. Tests use it to check that a failed operation leaves no half-done state and
// that the caller recovers.
package fault

import (
	"fmt"
	"slices"
	"sync"
)

// Injector queues failures per operation. The zero value is not usable; a fake makes
// one with New, naming its operations, and embeds it. It is safe for concurrent use.
type Injector struct {
	mu     sync.Mutex
	ops    []string
	queued map[string][]error
	// unknown records FailNext calls naming no operation of the fake: a misspelt
	// name must fail the test rather than inject nothing.
	unknown []string
}

// New returns an Injector for a fake whose operations (method names) are ops.
func New(ops ...string) *Injector {
	return &Injector{ops: slices.Clone(ops), queued: map[string][]error{}}
}

// FailNext makes the next call of op fail with err, once, without changing anything.
// Calls queue up: two FailNext for one op fail its next two calls.
func (i *Injector) FailNext(op string, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !slices.Contains(i.ops, op) {
		i.unknown = append(i.unknown, op)
		return
	}
	i.queued[op] = append(i.queued[op], err)
}

// Pending returns how many injected failures of op are still queued.
func (i *Injector) Pending(op string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.queued[op])
}

// Take is called by the fake at the start of op: it returns the failure queued for op
// and removes it, or nil. After a FailNext naming an unknown operation, every Take
// returns an error saying so.
func (i *Injector) Take(op string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.unknown) > 0 {
		return fmt.Errorf("fault: FailNext named unknown operation(s) %q; this fake has %q", i.unknown, i.ops)
	}
	q := i.queued[op]
	if len(q) == 0 {
		return nil
	}
	err := q[0]
	i.queued[op] = q[1:]
	return err
}
