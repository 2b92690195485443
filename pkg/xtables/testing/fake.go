package testing

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// RestoreFlags are the iptables-restore options that change what a restore
// does.
type RestoreFlags struct {
	// NoFlush is --noflush: keep tables and chains the payload does not
	// declare. kube-proxy always restores with it.
	NoFlush bool
	// Counters is --counters; counters are accepted and ignored.
	Counters bool
}

// Fake is a strict, concurrency-safe in-memory iptables for one family. The
// zero value is not usable; call NewFake.
type Fake struct {
	mu       sync.Mutex
	rules    *ruleset.Ruleset
	restores [][]byte
	failures []error
}

// NewFake returns a Fake with no tables loaded.
func NewFake(family ruleset.Family) *Fake {
	return &Fake{rules: ruleset.New(family)}
}

// Family returns the fake's address family.
func (f *Fake) Family() ruleset.Family {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rules.Family()
}

// Restore applies payload with --noflush, as the Proxier's Interface
// specifies.
func (f *Fake) Restore(ctx context.Context, payload []byte) error {
	return f.RestoreWithFlags(ctx, payload, RestoreFlags{NoFlush: true})
}

// RestoreWithFlags applies payload as iptables-restore with flags would. It is
// atomic: on error the ruleset is unchanged. Every call is recorded in
// Restores, failed ones included.
func (f *Fake) RestoreWithFlags(ctx context.Context, payload []byte, flags RestoreFlags) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores = append(f.restores, slices.Clone(payload))
	if len(f.failures) > 0 {
		err := f.failures[0]
		f.failures = f.failures[1:]
		return err
	}
	if err := f.rules.Apply(payload, flags.NoFlush); err != nil {
		return fmt.Errorf("iptables-restore: %w", err)
	}
	return nil
}

// SaveAll returns every loaded table as ruleset.Save prints it.
func (f *Fake) SaveAll(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return []byte(f.rules.Save()), nil
}

// SaveTable returns one table as ruleset.Save prints it. Like iptables-save
// -t, it shows a table that was never used as its empty built-in chains.
func (f *Fake) SaveTable(ctx context.Context, table string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkTable(table); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if text := f.rules.SaveTable(table); text != "" {
		return []byte(text), nil
	}
	empty := ruleset.New(f.rules.Family())
	if err := empty.Apply([]byte("*"+table+"\nCOMMIT\n"), true); err != nil {
		return nil, err
	}
	return []byte(empty.SaveTable(table)), nil
}

// FailNext makes the next n Restore or RestoreWithFlags calls fail with err
// without changing anything, as a kernel or lock failure would.
func (f *Fake) FailNext(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, err)
	}
}

// Ruleset returns a copy of the current rules, for tracer.Trace or
// comparison with ruleset.Equal.
func (f *Fake) Ruleset() *ruleset.Ruleset {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rules.Clone()
}

// Restores returns a copy of every payload passed to Restore or
// RestoreWithFlags, oldest first, including failed ones.
func (f *Fake) Restores() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	history := make([][]byte, len(f.restores))
	for i, payload := range f.restores {
		history[i] = slices.Clone(payload)
	}
	return history
}

func checkTable(table string) error {
	if !slices.Contains(ruleset.Tables(), table) {
		return fmt.Errorf("unknown table %q", table)
	}
	return nil
}
