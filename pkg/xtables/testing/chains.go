package testing

import (
	"context"
	"fmt"
	"slices"

	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// The methods in this file are the single-rule and single-chain operations of
// pkg/xtables.Interface (what `iptables -N/-I/-D/-X` would do). Each is
// carried out as a small restore through ruleset.Apply, so it is as strict as
// Restore, but it is not recorded in Restores and FailNext does not affect it.

// ChainNames returns the chains of table in iptables-save order. A table never
// used shows its built-in chains, as the kernel loads it on demand.
func (f *Fake) ChainNames(ctx context.Context, typedTable xtables.Table) ([]string, error) {
	table := string(typedTable)
	if err := f.check(ctx, table); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if names := f.rules.ChainNames(table); names != nil {
		return names, nil
	}
	return ruleset.BuiltinChains(table), nil
}

// ChainExists reports whether table holds chain.
func (f *Fake) ChainExists(ctx context.Context, typedTable xtables.Table, typedChain xtables.Chain) (bool, error) {
	names, err := f.ChainNames(ctx, typedTable)
	if err != nil {
		return false, err
	}
	return slices.Contains(names, string(typedChain)), nil
}

// EnsureChain creates chain in table unless it exists.
func (f *Fake) EnsureChain(ctx context.Context, typedTable xtables.Table, typedChain xtables.Chain) error {
	table, chain := string(typedTable), string(typedChain)
	if err := f.check(ctx, table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rules.Chain(table, chain) != nil || ruleset.IsBuiltinChain(table, chain) {
		return nil
	}
	return f.applyLocked(table, "-N "+chain)
}

// EnsureRule inserts the rule at the top of chain unless the chain already
// holds it.
func (f *Fake) EnsureRule(ctx context.Context, typedTable xtables.Table, typedChain xtables.Chain, args ...string) error {
	table, chain := string(typedTable), string(typedChain)
	if err := f.check(ctx, table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	held, err := f.holdsLocked(table, chain, args)
	if err != nil || held {
		return err
	}
	return f.applyLocked(table, "-I "+chain+" 1 "+ruleset.FormatArgs(args))
}

// DeleteRule deletes the rule from chain if the chain holds it.
func (f *Fake) DeleteRule(ctx context.Context, typedTable xtables.Table, typedChain xtables.Chain, args ...string) error {
	table, chain := string(typedTable), string(typedChain)
	if err := f.check(ctx, table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	held, err := f.holdsLocked(table, chain, args)
	if err != nil || !held {
		return err
	}
	return f.applyLocked(table, "-D "+chain+" "+ruleset.FormatArgs(args))
}

// DeleteChain flushes and deletes chain if it exists. Like the kernel, it
// fails while another rule still jumps to the chain.
func (f *Fake) DeleteChain(ctx context.Context, typedTable xtables.Table, typedChain xtables.Chain) error {
	table, chain := string(typedTable), string(typedChain)
	if err := f.check(ctx, table); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rules.Chain(table, chain) == nil {
		return nil
	}
	return f.applyLocked(table, "-F "+chain+"\n-X "+chain)
}

func (f *Fake) check(ctx context.Context, table string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return checkTable(table)
}

// holdsLocked reports whether chain holds the rule args; a missing chain is an
// error, as iptables -C reports.
func (f *Fake) holdsLocked(table, chain string, args []string) (bool, error) {
	rule, err := ruleset.ParseRule(ruleset.FormatArgs(args))
	if err != nil {
		return false, fmt.Errorf("%s/%s: %w", table, chain, err)
	}
	c := f.rules.Chain(table, chain)
	if c == nil && ruleset.IsBuiltinChain(table, chain) {
		return false, nil // table not loaded yet: its built-ins are empty
	}
	if c == nil {
		return false, fmt.Errorf("chain %s does not exist in table %s", chain, table)
	}
	for _, held := range c.Rules {
		if held.SameAs(rule) {
			return true, nil
		}
	}
	return false, nil
}

func (f *Fake) applyLocked(table, commands string) error {
	payload := "*" + table + "\n" + commands + "\nCOMMIT\n"
	if err := f.rules.Apply([]byte(payload), true); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	return nil
}
