package xtables

import "context"

// Interface is the kernel's iptables for one IP family, as the Proxier uses it. The
// implementation for real hosts is Exec; pkg/xtables/testing has a strict fake. All
// methods are safe for concurrent use.
type Interface interface {
	// Restore feeds payload to iptables-restore (or ip6tables-restore) with --noflush,
	// waiting a bounded time for the xtables lock. It is atomic: on error nothing
	// changed.
	Restore(ctx context.Context, payload []byte) error
	// ChainNames returns the names of the chains in a table.
	ChainNames(ctx context.Context, table Table) ([]string, error)
	// ChainExists reports whether a chain exists, without listing the whole table.
	ChainExists(ctx context.Context, table Table, chain Chain) (bool, error)
	// EnsureChain creates a chain if it does not exist.
	EnsureChain(ctx context.Context, table Table, chain Chain) error
	// EnsureRule inserts a rule at the top of a chain unless the chain already holds
	// it.
	EnsureRule(ctx context.Context, table Table, chain Chain, args ...string) error
	// DeleteRule deletes a rule if the chain holds it.
	DeleteRule(ctx context.Context, table Table, chain Chain, args ...string) error
	// DeleteChain flushes and deletes a chain if it exists.
	DeleteChain(ctx context.Context, table Table, chain Chain) error
}

// ChainLimiter is implemented by an Interface whose restores slow down superlinearly
// with the number of chains one restore declares. iptables-nft-restore --noflush is
// one: declaring N chains in one transaction took 0.2 s for 4,000, 4.6 s for 16,000 and
// 32 s for 32,000 (2 cores, iptables 1.8.9, kernel 6.18), while eight restores of 4,000
// each took 0.2 s apiece. perf puts ~90% of that time in strcmp called from one loop in
// xtables-nft-multi that walks a name-sorted linked list: every chain a restore
// declares or jumps to is inserted by a linear walk, so T chains cost ~T²/2
// comparisons. A cold full sync at 10k services × 10 endpoints declares about 110k
// chains and would take most of an hour in one restore; kube-proxy's first sync has
// exactly this problem.
type ChainLimiter interface {
	// MaxChainsPerRestore is the number of chain declarations above which a payload
	// is split into several restores (see pkg/iptables.SplitPayload); 0 means never
	// split.
	MaxChainsPerRestore() int
}

// TableScanner is implemented by an Interface that can hand over a table's
// iptables-save output line by line, without holding it whole: at 10k services the nat
// table saves to ~50 MB, which a full sync reads to find stale chains and hooks.
type TableScanner interface {
	// ScanTable calls line for each line of `iptables-save -t table` output,
	// newline included; the slice is valid only during the call. An error from line
	// stops the scan and is returned.
	ScanTable(ctx context.Context, table Table, line func([]byte) error) error
}
