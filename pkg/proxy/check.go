package proxy

import (
	"context"
	"time"
)

// ReasonDrift is the prefix of the full-sync reason a periodic check gives when it
// cannot repair what it found by rewriting a few chains.
const ReasonDrift = "periodic check"

// PeriodicChecker is implemented by Providers whose periodic work is a check instead of
// a full rewrite (iptables and nftables modes; see docs/reliability.md "Full syncs").
// The controller calls CheckPeriodic every full-sync period, from a goroutine of its
// own: it reads the kernel's state without holding up syncs, compares it with what the
// Provider applied, rewrites only what drifted (iptables mode; nftables mode does not
// repair in place), and asks for a full sync (RequestFullSync, reported in
// FullSyncReason) when it cannot. Such a Provider makes no periodic full sync of its
// own.
type PeriodicChecker interface {
	CheckPeriodic(ctx context.Context) (CheckResult, error)
}

// CheckResult describes one periodic check.
type CheckResult struct {
	// Duration is the check's wall time, repair included.
	Duration time.Duration
	// Skipped says why nothing was compared ("" when the check ran): no state known
	// to be applied, or a sync rewrote everything while the kernel was read.
	Skipped string
	// Compared counts the chains compared.
	Compared int
	// Drifted names the chains, "table/CHAIN", that did not hold what was applied;
	// Repaired is true when they were rewritten.
	Drifted  []string
	Repaired bool
	// FullSyncReason is set when the check asked for a full sync instead (the hooks
	// or canaries are gone, too many chains drifted, or the repair failed).
	FullSyncReason string
	// Details are mode-specific key/value pairs for the log line.
	Details []any
}
