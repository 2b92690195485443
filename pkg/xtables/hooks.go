package xtables

import (
	"context"
	"errors"
	"fmt"
)

// Hook is a jump from a built-in chain into one of the proxy's chains. A restore
// cannot insert a rule only if it is missing, so either each one is ensured separately
// (EnsureHooks: check, then insert at the top), or the caller checks a save of the
// table and writes the missing ones into its payload as "-I CHAIN 1" (iptables mode's
// full syncs, pkg/iptables foldedHooks).
type Hook struct {
	// Table is TableFilter or TableNAT.
	Table Table
	// Chain is the built-in chain the jump lives in.
	Chain Chain
	// Target is the proxy's chain it jumps to.
	Target Chain
	// Args are the rule's matches and jump, as iptables arguments.
	Args []string
}

// EnsureHooks creates each hook's target chain and inserts its jump at the top of its
// built-in chain unless it is already there, in order. It goes on after a failure so
// that one bad hook does not leave the others missing, and returns every error; but
// it stops at the first lock timeout. A held xtables lock fails every command alike,
// and each command waits out the whole bound first: going on made one retried IPVS
// full sync on iptables-legacy wait 12 × --iptables-lock-wait (9 hooks and 3 canary
// chains, measured in the guest, docs/reliability.md) before its restore failed too.
func EnsureHooks(ctx context.Context, ipt Interface, hooks []Hook) error {
	var errs []error
	for _, h := range hooks {
		err := ipt.EnsureChain(ctx, h.Table, h.Target)
		if err == nil {
			err = ipt.EnsureRule(ctx, h.Table, h.Chain, h.Args...)
		}
		if err != nil {
			errs = append(errs, err)
			if IsLockTimeout(err) {
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ensuring hook rules: %w", err)
	}
	return nil
}

// EnsureCanary creates ChainCanary in every CanaryTables table, stopping at the first
// lock timeout as EnsureHooks does.
func EnsureCanary(ctx context.Context, ipt Interface) error {
	var errs []error
	for _, table := range CanaryTables() {
		if err := ipt.EnsureChain(ctx, table, ChainCanary); err != nil {
			errs = append(errs, err)
			if IsLockTimeout(err) {
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ensuring canary chains: %w", err)
	}
	return nil
}

// CanaryPresent reports whether ChainCanary still exists in every CanaryTables table.
func CanaryPresent(ctx context.Context, ipt Interface) (bool, error) {
	for _, table := range CanaryTables() {
		ok, err := ipt.ChainExists(ctx, table, ChainCanary)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
