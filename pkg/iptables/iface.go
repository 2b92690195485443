package iptables

import "context"

// Interface is the kernel's iptables for one IP family, as the Proxier uses it. The
// implementation for real hosts is Exec; pkg/iptables/testing has a strict fake. All
// methods are safe for concurrent use.
type Interface interface {
	// Restore feeds payload to iptables-restore (or ip6tables-restore) with --noflush,
	// waiting a bounded time for the xtables lock. It is atomic: on error nothing
	// changed.
	Restore(ctx context.Context, payload []byte) error
	// ChainNames returns the names of the chains in a table.
	ChainNames(ctx context.Context, table string) ([]string, error)
	// ChainExists reports whether a chain exists, without listing the whole table.
	ChainExists(ctx context.Context, table, chain string) (bool, error)
	// EnsureChain creates a chain if it does not exist.
	EnsureChain(ctx context.Context, table, chain string) error
	// EnsureRule inserts a rule at the top of a chain unless the chain already holds
	// it.
	EnsureRule(ctx context.Context, table, chain string, args ...string) error
	// DeleteRule deletes a rule if the chain holds it.
	DeleteRule(ctx context.Context, table, chain string, args ...string) error
	// DeleteChain flushes and deletes a chain if it exists.
	DeleteChain(ctx context.Context, table, chain string) error
}
