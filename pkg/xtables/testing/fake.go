package testing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/switchyard-io/switchyard/pkg/fault"
	"github.com/switchyard-io/switchyard/pkg/xtables"
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
//
// Every method fails on demand: FailNext(op, err), with op one of Operations
// ("Restore" also covers RestoreWithFlags), makes the next call of that method
// return err having changed nothing. Errors are *xtables.Error values classified
// as Exec classifies the kernel's (a restore names its failing line; a missing
// chain is xtables.IsNotFound), so callers' error handling is tested against
// the same types.
type Fake struct {
	*fault.Injector

	mu       sync.Mutex
	rules    *ruleset.Ruleset
	restores [][]byte
}

// Operations are the fake's methods that FailNext can make fail.
var Operations = []string{"Restore", "SaveAll", "SaveTable", "ScanTable", "ChainNames", "ChainExists",
	"EnsureChain", "EnsureRule", "DeleteRule", "DeleteChain"}

// NewFake returns a Fake with no tables loaded.
func NewFake(family ruleset.Family) *Fake {
	return &Fake{Injector: fault.New(Operations...), rules: ruleset.New(family)}
}

// LockTimeout returns the error Exec returns when another program holds the xtables
// lock for longer than the lock wait, for FailNext.
func LockTimeout() error {
	return &xtables.Error{Op: "iptables-restore", Reason: xtables.ReasonLockTimeout,
		Message: "Another app is currently holding the xtables lock. Stopped waiting after 5s."}
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
// Restores, failed ones included. A payload the strict model rejects fails with
// an *xtables.Error naming the line.
func (f *Fake) RestoreWithFlags(ctx context.Context, payload []byte, flags RestoreFlags) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores = append(f.restores, slices.Clone(payload))
	if err := f.Take("Restore"); err != nil {
		return err
	}
	if err := f.rules.Apply(payload, flags.NoFlush); err != nil {
		return restoreError(payload, err)
	}
	return nil
}

// restoreError classifies an error of ruleset.Apply as Exec classifies
// iptables-restore's.
func restoreError(payload []byte, err error) error {
	var lineErr *ruleset.LineError
	if !errors.As(err, &lineErr) {
		return &xtables.Error{Op: "iptables-restore", Err: err}
	}
	reason, chain := xtables.ReasonOther, xtables.Chain("")
	var missing *ruleset.ChainNotFoundError
	if errors.As(err, &missing) {
		reason, chain = xtables.ReasonChainNotFound, xtables.Chain(missing.Chain)
	}
	e := xtables.NewRestoreError("iptables-restore", payload, lineErr.Line, reason, chain, lineErr.Err)
	if e.LineText == "" {
		e.LineText = lineErr.Text
	}
	return e
}

// SaveAll returns every loaded table as ruleset.Save prints it.
func (f *Fake) SaveAll(ctx context.Context) ([]byte, error) {
	if err := f.begin(ctx, "SaveAll", ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return []byte(f.rules.Save()), nil
}

// SaveTable returns one table as ruleset.Save prints it. Like iptables-save
// -t, it shows a table that was never used as its empty built-in chains.
func (f *Fake) SaveTable(ctx context.Context, table xtables.Table) ([]byte, error) {
	if err := f.begin(ctx, "SaveTable", table); err != nil {
		return nil, err
	}
	return f.saveTable(table)
}

func (f *Fake) saveTable(table xtables.Table) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if text := f.rules.SaveTable(string(table)); text != "" {
		return []byte(text), nil
	}
	empty := ruleset.New(f.rules.Family())
	if err := empty.Apply([]byte("*"+string(table)+"\nCOMMIT\n"), true); err != nil {
		return nil, err
	}
	return []byte(empty.SaveTable(string(table))), nil
}

var _ xtables.TableScanner = &Fake{}

// ScanTable implements xtables.TableScanner over SaveTable's output; it fails on
// FailNext("ScanTable").
func (f *Fake) ScanTable(ctx context.Context, table xtables.Table, line func([]byte) error) error {
	if err := f.begin(ctx, "ScanTable", table); err != nil {
		return err
	}
	text, err := f.saveTable(table)
	if err != nil {
		return err
	}
	for l := range bytes.Lines(text) {
		if err := line(l); err != nil {
			return err
		}
	}
	return nil
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

// begin starts every operation: a cancelled context, then an injected failure,
// then an unknown table (when the operation names one) fail it before it
// changes anything.
func (f *Fake) begin(ctx context.Context, op string, table xtables.Table) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Take(op); err != nil {
		return err
	}
	if op == "SaveAll" {
		return nil
	}
	if !slices.Contains(ruleset.Tables(), string(table)) {
		return fmt.Errorf("unknown table %q", table)
	}
	return nil
}
