package proxy

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Provider programs one IP family's kernel state in one mode from snapshots. The
// controller drives every Provider the same way: one sync loop calls Sync, one canary
// watcher calls CheckKernel and RequestFullSync. Sync is called from one goroutine;
// RequestFullSync and CheckKernel may be called from others.
type Provider interface {
	// Family is the IP family the Provider programs.
	Family() v1.IPFamily
	// Sync programs snap, in full or partially as the Provider's SyncState decides.
	// On failure nothing is assumed about the kernel and the next sync is full.
	Sync(ctx context.Context, snap *endpoints.Snapshot) (Result, error)
	// RequestFullSync makes the next Sync a full one, logged with reason.
	RequestFullSync(reason string)
	// CheckKernel reports whether the state only a full sync writes is still in the
	// kernel (kube-proxy's canary chains): false means someone flushed it, and the
	// caller requests a full sync.
	CheckKernel(ctx context.Context) (ok bool, err error)
	// Status reports what the Provider holds applied, for the state dump. It may be
	// called from any goroutine; it waits for a sync in progress rather than report
	// half of one, and may cost O(applied state) (the dump is on demand only).
	Status() Status
}

// TerminationChecker is implemented by Providers that drain removed endpoints (IPVS
// graceful termination): CheckTerminating is called periodically and deletes the
// drained ones whose connections are over.
type TerminationChecker interface {
	CheckTerminating(ctx context.Context) (TerminationResult, error)
}

// TerminationResult describes one termination check.
type TerminationResult struct {
	// Deleted names the drained backends deleted by this check.
	Deleted []string
	// Remaining is the number of backends still draining (kube-proxy's
	// ipvs graceful termination list length).
	Remaining int
}

// Result describes one Provider sync in the terms the controller needs for logs,
// metrics and health, whatever the mode.
type Result struct {
	// Full is true when everything was rewritten; Reason says why.
	Full   bool
	Reason string
	// Duration is the sync's wall time (kube-proxy's sync_proxy_rules_duration_seconds).
	Duration time.Duration
	// RulesWritten counts the iptables rules in this sync's restore payloads, per
	// table (kube-proxy's sync_proxy_rules_iptables_last{table}).
	RulesWritten map[string]int
	// RulesTotal counts the iptables rules the Provider owns after the sync, per
	// table (kube-proxy's sync_proxy_rules_iptables_total{table}); nil when unknown
	// (failed syncs, and partial syncs of modes whose rules only full syncs write).
	RulesTotal map[string]int
	// Payloads are what was written to the kernel as text, in order (restore inputs,
	// ipset restore input), for -v=9 logs; they are the sync's own buffers, not copies.
	Payloads []Payload
	// RestoreFailed is true when the sync failed because an iptables-restore failed
	// (kube-proxy's sync_proxy_rules_iptables_restore_failures_total).
	RestoreFailed bool
	// ServiceErrors are problems with single service ports that did not fail the
	// sync; the caller logs them.
	ServiceErrors []error
	// Details are mode-specific key/value pairs for the per-sync log line.
	Details []any
}

// Payload kinds.
const (
	PayloadIPTablesRestore = "iptables-restore"
	PayloadIPSetRestore    = "ipset restore"
)

// Payload is one text written to the kernel.
type Payload struct {
	// Kind says where it went: PayloadIPTablesRestore, PayloadIPSetRestore, ….
	Kind string
	Data []byte
}

// Kind returns "full" or "partial".
func (r Result) Kind() string { return SyncKind(r.Full) }

// SyncKind names a sync as logs, errors and metric labels do: "full" or "partial".
func SyncKind(full bool) string {
	if full {
		return "full"
	}
	return "partial"
}

// PayloadNFTables is the kind of an `nft -f` transaction.
const PayloadNFTables = "nft -f"
