// Package testing holds a strict fake of sysctl.Interface.
package testing

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/switchyard-io/switchyard/pkg/sysctl"
)

// Fake is a sysctl.Interface over a map. Like the kernel it knows only the parameters
// it was given: others fail with ENOENT. A parameter marked read-only fails writes
// with the errno given (EROFS for a read-only /sys, EACCES for a sysctl that a
// non-initial network namespace may only read), even when the value is unchanged.
type Fake struct {
	mu       sync.Mutex
	values   map[string]int
	readOnly map[string]syscall.Errno
	writes   []string
}

var _ sysctl.Interface = &Fake{}

// NewFake returns a fake holding values.
func NewFake(values map[string]int) *Fake {
	f := &Fake{values: map[string]int{}, readOnly: map[string]syscall.Errno{}}
	for k, v := range values {
		f.values[k] = v
	}
	return f
}

// SetReadOnly makes writes to name fail with errno.
func (f *Fake) SetReadOnly(name string, errno syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readOnly[name] = errno
}

// Get implements sysctl.Interface.
func (f *Fake) Get(name string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.values[name]
	if !ok {
		return 0, fmt.Errorf("reading %s: %w", name, syscall.ENOENT)
	}
	return v, nil
}

// Set implements sysctl.Interface.
func (f *Fake) Set(name string, value int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.values[name]; !ok {
		return fmt.Errorf("writing %s=%d: %w", name, value, syscall.ENOENT)
	}
	if errno, ok := f.readOnly[name]; ok {
		return fmt.Errorf("writing %s=%d: %w", name, value, errno)
	}
	f.values[name] = value
	f.writes = append(f.writes, fmt.Sprintf("%s=%d", name, value))
	return nil
}

// Writes returns the successful writes, in order, as "name=value".
func (f *Fake) Writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}
