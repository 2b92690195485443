package testing

import (
	"context"
	"errors"
	"slices"

	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// The methods in this file are the single-rule and single-chain operations of
// xtables.Interface (what `iptables -N/-I/-D/-X` would do). Each is carried
// out as a small restore through ruleset.Apply, so it is as strict as Restore,
// but it is not recorded in Restores. Each fails on FailNext of its own name.

// ChainNames returns the chains of table in iptables-save order. A table never
// used shows its built-in chains, as the kernel loads it on demand.
func (f *Fake) ChainNames(ctx context.Context, table xtables.Table) ([]string, error) {
	if err := f.begin(ctx, "ChainNames", table); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.chainNamesLocked(string(table)), nil
}

func (f *Fake) chainNamesLocked(table string) []string {
	if names := f.rules.ChainNames(table); names != nil {
		return names
	}
	return ruleset.BuiltinChains(table)
}

// ChainExists reports whether table holds chain.
func (f *Fake) ChainExists(ctx context.Context, table xtables.Table, chain xtables.Chain) (bool, error) {
	if err := f.begin(ctx, "ChainExists", table); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.chainNamesLocked(string(table)), string(chain)), nil
}

// EnsureChain creates chain in table unless it exists.
func (f *Fake) EnsureChain(ctx context.Context, table xtables.Table, chain xtables.Chain) error {
	if err := f.begin(ctx, "EnsureChain", table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rules.Chain(string(table), string(chain)) != nil || ruleset.IsBuiltinChain(string(table), string(chain)) {
		return nil
	}
	return f.applyLocked("creating chain", table, chain, "-N "+string(chain))
}

// EnsureRule inserts the rule at the top of chain unless the chain already
// holds it. A missing chain, or a jump to one, is an xtables.IsNotFound error.
func (f *Fake) EnsureRule(ctx context.Context, table xtables.Table, chain xtables.Chain, args ...string) error {
	const op = "ensuring rule in"
	if err := f.begin(ctx, "EnsureRule", table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	held, err := f.holdsLocked(op, table, chain, args)
	if err != nil || held {
		return err
	}
	return f.applyLocked(op, table, chain, "-I "+string(chain)+" 1 "+ruleset.FormatArgs(args))
}

// DeleteRule deletes the rule from chain if the chain holds it.
func (f *Fake) DeleteRule(ctx context.Context, table xtables.Table, chain xtables.Chain, args ...string) error {
	const op = "deleting rule in"
	if err := f.begin(ctx, "DeleteRule", table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	held, err := f.holdsLocked(op, table, chain, args)
	if err != nil || !held {
		return err
	}
	return f.applyLocked(op, table, chain, "-D "+string(chain)+" "+ruleset.FormatArgs(args))
}

// DeleteChain flushes and deletes chain if it exists. Like the kernel, it
// fails while another rule still jumps to the chain.
func (f *Fake) DeleteChain(ctx context.Context, table xtables.Table, chain xtables.Chain) error {
	if err := f.begin(ctx, "DeleteChain", table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rules.Chain(string(table), string(chain)) == nil {
		return nil
	}
	return f.applyLocked("deleting chain", table, chain, "-F "+string(chain)+"\n-X "+string(chain))
}

// holdsLocked reports whether chain holds the rule args; a missing chain is an
// error, as iptables -C reports.
func (f *Fake) holdsLocked(op string, table xtables.Table, chain xtables.Chain, args []string) (bool, error) {
	rule, err := ruleset.ParseRule(ruleset.FormatArgs(args))
	if err != nil {
		return false, &xtables.Error{Op: op, Table: table, Chain: chain, Err: err}
	}
	c := f.rules.Chain(string(table), string(chain))
	if c == nil && ruleset.IsBuiltinChain(string(table), string(chain)) {
		return false, nil // table not loaded yet: its built-ins are empty
	}
	if c == nil {
		return false, &xtables.Error{Op: op, Table: table, Chain: chain, Reason: xtables.ReasonChainNotFound,
			Err: &ruleset.ChainNotFoundError{Table: string(table), Chain: string(chain)}}
	}
	for _, held := range c.Rules {
		if held.SameAs(rule) {
			return true, nil
		}
	}
	return false, nil
}

// applyLocked runs commands as a one-table restore, classifying a failure as
// Exec classifies go-iptables'.
func (f *Fake) applyLocked(op string, table xtables.Table, chain xtables.Chain, commands string) error {
	payload := "*" + string(table) + "\n" + commands + "\nCOMMIT\n"
	err := f.rules.Apply([]byte(payload), true)
	if err == nil {
		return nil
	}
	e := &xtables.Error{Op: op, Table: table, Chain: chain, Err: err}
	var missing *ruleset.ChainNotFoundError
	if errors.As(err, &missing) {
		e.Reason = xtables.ReasonChainNotFound
	}
	return e
}
