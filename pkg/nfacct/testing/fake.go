// Package testing holds a strict fake of nfacct.Interface.
package testing

import (
	"fmt"
	"sync"

	"github.com/switchyard-io/switchyard/pkg/nfacct"
)

// Fake is an nfacct.Interface over a map. Like the kernel it refuses names over 31
// characters and reports missing objects as nfacct.ErrNotFound.
type Fake struct {
	mu       sync.Mutex
	counters map[string]*nfacct.Counter
}

var _ nfacct.Interface = &Fake{}

// NewFake returns a fake with no objects.
func NewFake() *Fake { return &Fake{counters: map[string]*nfacct.Counter{}} }

// Ensure implements nfacct.Interface.
func (f *Fake) Ensure(name string) error {
	if err := nfacct.CheckName(name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.counters[name]; !ok {
		f.counters[name] = &nfacct.Counter{Name: name}
	}
	return nil
}

// Get implements nfacct.Interface.
func (f *Fake) Get(name string) (nfacct.Counter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.counters[name]
	if !ok {
		return nfacct.Counter{}, fmt.Errorf("%s: %w", name, nfacct.ErrNotFound)
	}
	return *c, nil
}

// Count adds packets to an existing object, as a matching rule would.
func (f *Fake) Count(name string, packets, bytes uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.counters[name]
	if !ok {
		return fmt.Errorf("%s: %w", name, nfacct.ErrNotFound)
	}
	c.Packets += packets
	c.Bytes += bytes
	return nil
}
