package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// StaleChainDelay is how long a flushed service chain waits before it is deleted:
// with kernels before 6.2, a chain a just-deleted map element pointed to still counts
// as referenced for a short while, and deleting it would fail the transaction
// (kube-proxy waits one second too).
const StaleChainDelay = time.Second

// ReasonStaleDeleteFailed is the full-sync reason after a failed deletion of stale
// chains (kube-proxy then does a full sync too).
const ReasonStaleDeleteFailed = "deleting stale chains failed"

// Proxier programs one IP family's kube-proxy table from snapshots: nftables mode's
// proxy.Provider. Each Sync deletes the chains stale for StaleChainDelay, asks its
// SyncState for a full or partial sync, renders (pure) and applies the transactions
// (one, but several for a large full sync: RenderInTransactions).
// It is driven by one goroutine; RequestFullSync, CheckKernel and Status may be called
// from any.
type Proxier struct {
	cfg   *Config
	nft   Kernel
	now   func() time.Time
	state *proxy.SyncState

	// Only the sync goroutine uses these, under mu.
	// elements mirrors the set and map elements applied (nil: unknown, next sync
	// is full anyway).
	elements *Elements
	// stale are the flushed service chains waiting for deletion, with when they
	// were flushed.
	stale map[string]time.Time
	// baseChainsRecreated is set after the first full sync, which recreates the
	// base chains as kube-proxy does once per start.
	baseChainsRecreated bool
	// writtenSinceCheck are the chains partial syncs wrote (or flushed) since the
	// last periodic check took them: the check compares the others' rules with what
	// it read the time before.
	writtenSinceCheck map[string]bool
	// portsPerTx is the number of service ports per transaction of a full sync
	// (0: PortsPerTransaction); tests set it lower.
	portsPerTx int

	// cidrMu guards serviceCIDRs, which the controller sets from the ServiceCIDR
	// objects at any time; full syncs render them.
	cidrMu       sync.Mutex
	serviceCIDRs []netip.Prefix

	// memory is what the last periodic check read; only CheckPeriodic uses it, one
	// call at a time.
	memory checkMemory

	// mu is held for a whole sync, so that Status never reports half of one.
	mu sync.Mutex
	// applied is the text of the last transaction applied, and appliedGen the
	// snapshot generation it was for; hashed on demand by Status.
	applied    string
	appliedGen uint64
}

var (
	_ proxy.Provider        = &Proxier{}
	_ proxy.PeriodicChecker = &Proxier{}
)

// NewProxier returns a Proxier for cfg's family over nft; now is the clock.
// fullSyncPeriod is the period of the periodic full sync (0: none) when nft cannot dump
// its rules; when it can (the netlink Kernel, Open), the Proxier makes no periodic full
// sync and the caller calls CheckPeriodic every fullSyncPeriod instead (check.go).
func NewProxier(cfg *Config, nft Kernel, fullSyncPeriod time.Duration, now func() time.Time) (*Proxier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("nftables proxier: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	if _, ok := nft.(RuleDumper); ok {
		fullSyncPeriod = 0
	}
	return &Proxier{cfg: cfg, nft: nft, now: now, state: proxy.NewSyncState(fullSyncPeriod, now), stale: map[string]time.Time{},
		serviceCIDRs: slices.Clone(cfg.ServiceCIDRs)}, nil
}

// SetServiceCIDRs sets the service ranges (from the ServiceCIDR objects, kube-proxy's
// OnServiceCIDRsChanged) whose unallocated addresses the next full sync drops; those
// of the other family are ignored. It reports whether they changed; the caller then
// requests a full sync, as only full syncs write that rule.
func (p *Proxier) SetServiceCIDRs(cidrs []netip.Prefix) bool {
	var mine []netip.Prefix
	for _, c := range cidrs {
		if endpoints.FamilyOf(c.Addr()) == p.cfg.Family {
			mine = append(mine, c.Masked())
		}
	}
	slices.SortFunc(mine, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	mine = slices.Compact(mine)
	p.cidrMu.Lock()
	defer p.cidrMu.Unlock()
	if slices.Equal(mine, p.serviceCIDRs) {
		return false
	}
	p.serviceCIDRs = mine
	return true
}

// Family returns the IP family the proxier programs.
func (p *Proxier) Family() v1.IPFamily { return p.cfg.Family }

// RequestFullSync makes the next Sync a full one.
func (p *Proxier) RequestFullSync(reason string) { p.state.RequestFull(reason) }

// SyncResult describes one sync in nftables mode's terms.
type SyncResult struct {
	Full   bool
	Reason string
	Stats  Stats
	// Transaction is the `nft -f` input applied ("" when nothing was written): the
	// Plan's String, with a "# transaction i of n" line before each transaction of a
	// full sync in several.
	Transaction string
	// Operations is the number of operations in the transactions.
	Operations int
	// DeletedChains is the number of stale chains deleted before the sync.
	DeletedChains int
	// RenderTime and ApplyTime split the sync's duration.
	RenderTime, ApplyTime time.Duration
	// Writer is how the transactions were written: WriterNFT, WriterNetlink when the
	// Kernel compiled them to netlink batches itself, or both joined with "+" ("" when
	// nothing was written).
	Writer string
}

// Sync implements proxy.Provider: SyncDetailed, summed up.
func (p *Proxier) Sync(ctx context.Context, snap *endpoints.Snapshot) (proxy.Result, error) {
	res, err := p.SyncDetailed(ctx, snap)
	out := proxy.Result{
		Full: res.Full, Reason: res.Reason, Duration: res.RenderTime + res.ApplyTime, RestoreFailed: err != nil,
		Details: []any{"servicePorts", res.Stats.Services, "chains", res.Stats.Chains, "unchangedChains", res.Stats.UnchangedChains, "rules", res.Stats.Rules,
			"staleChains", res.Stats.StaleChains, "deletedChains", res.DeletedChains,
			"elementsAdded", res.Stats.ElementsAdded, "elementsDeleted", res.Stats.ElementsDeleted,
			"operations", res.Operations, "bytes", len(res.Transaction), "render", res.RenderTime, "apply", res.ApplyTime, "writer", res.Writer},
	}
	if res.Transaction != "" {
		out.Payloads = []proxy.Payload{{Kind: proxy.PayloadNFTables, Data: []byte(res.Transaction)}}
	}
	return out, err
}

// SyncDetailed programs snap and reports it in nftables mode's terms. On failure
// nothing is assumed about the kernel and the next sync is full.
func (p *Proxier) SyncDetailed(ctx context.Context, snap *endpoints.Snapshot) (SyncResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var res SyncResult
	deleted, staleErr := p.deleteStaleChains(ctx)
	res.DeletedChains = deleted
	if staleErr != nil {
		p.state.RequestFull(ReasonStaleDeleteFailed)
	}
	d := p.state.Begin(snap)
	res.Full, res.Reason = d.Full, d.Reason
	if !d.Full && p.elements == nil { // cannot happen: a success always leaves a mirror
		d = proxy.Decision{Full: true, Reason: proxy.ReasonFailed, Started: d.Started}
		res.Full, res.Reason = true, d.Reason
	}
	plan, err := p.render(ctx, snap, d)
	res.RenderTime = p.now().Sub(d.Started)
	if err != nil {
		p.failed()
		return res, err
	}
	res.Stats, res.Operations = plan.Stats, plan.NumOperations()
	if res.Operations == 0 {
		p.state.Succeeded(snap)
		return res, nil
	}
	res.Transaction = plan.String()
	applyStart := p.now()
	res.Writer, err = apply(ctx, p.nft, plan)
	res.ApplyTime = p.now().Sub(applyStart)
	if err != nil {
		// The transactions before the failed one are in the kernel: the next sync is
		// full, lists the table and repairs from there (each writes its chains with
		// add and flush, and its elements against what it lists).
		p.failed()
		return res, fmt.Errorf("applying %s nftables sync (%d operations): %w", proxy.SyncKind(res.Full), res.Operations, err)
	}
	p.succeeded(plan, applyStart)
	p.applied, p.appliedGen = res.Transaction, snap.Generation
	p.state.Succeeded(snap)
	return res, nil
}

// Apply runs plan's transactions through nft in order, stopping at the first that
// fails; those before it stay applied.
func Apply(ctx context.Context, nft Kernel, plan *Plan) error {
	_, err := apply(ctx, nft, plan)
	return err
}

// apply is Apply, which also says how the transactions were written: WriterNFT,
// WriterNetlink, or both joined with "+" in the order first used (a full sync whose
// setup went through nft and its service ports over netlink: "nft+netlink").
func apply(ctx context.Context, nft Kernel, plan *Plan) (string, error) {
	var writers []string
	txs := plan.Transactions()
	for i, tx := range txs {
		err := nft.Run(ctx, tx)
		w := WriterNFT
		if r, ok := nft.(WriterReporter); ok {
			w = r.LastWriter()
		}
		if !slices.Contains(writers, w) {
			writers = append(writers, w)
		}
		if err != nil {
			if len(txs) == 1 {
				return strings.Join(writers, "+"), err
			}
			return strings.Join(writers, "+"), fmt.Errorf("transaction %d of %d (%d operations): %w", i+1, len(txs), tx.NumOperations(), err)
		}
	}
	return strings.Join(writers, "+"), nil
}

// render computes the plan d asks for; a full one first lists the table.
func (p *Proxier) render(ctx context.Context, snap *endpoints.Snapshot, d proxy.Decision) (*Plan, error) {
	if !d.Full {
		return RenderPartial(p.nft.NewTransaction(), d.Base, snap, d.Changed, p.cfg, p.elements), nil
	}
	kernel, err := readKernel(ctx, p.nft)
	if err != nil {
		return nil, err
	}
	kernel.RecreateBaseChains = !p.baseChainsRecreated
	cfg := p.renderConfig()
	portsPerTx := p.portsPerTx
	if portsPerTx <= 0 {
		portsPerTx = PortsPerTransaction
	}
	return RenderInTransactions(p.nft.NewTransaction, snap, &cfg, kernel, portsPerTx), nil
}

// renderConfig is the Config full renders use: the node's, with the service ranges
// the controller set last.
func (p *Proxier) renderConfig() Config {
	cfg := *p.cfg
	p.cidrMu.Lock()
	cfg.ServiceCIDRs = p.serviceCIDRs
	p.cidrMu.Unlock()
	return cfg
}

// succeeded records what an applied plan changed: the element mirror, and the chains
// now waiting for deletion (a chain written again is needed again).
func (p *Proxier) succeeded(plan *Plan, at time.Time) {
	if plan.Full {
		p.elements = plan.elements
		p.baseChainsRecreated = true
	} else {
		p.elements.commit(plan.delta)
	}
	if p.writtenSinceCheck == nil {
		p.writtenSinceCheck = map[string]bool{}
	}
	for _, c := range plan.WrittenChains {
		delete(p.stale, c)
		p.writtenSinceCheck[c] = true
	}
	for _, c := range plan.StaleChains {
		p.writtenSinceCheck[c] = true
	}
	for _, c := range plan.StaleChains {
		if _, ok := p.stale[c]; !ok {
			p.stale[c] = at
		}
	}
}

// failed forgets what a failed sync may have left unknown: the next sync is full, and
// it lists the table again (the stale chains among it).
func (p *Proxier) failed() {
	p.state.Failed()
	p.elements = nil
	clear(p.stale)
}

// deleteStaleChains deletes, in one transaction, the chains flushed at least
// StaleChainDelay ago. On failure they are forgotten: the next full sync (requested by
// the caller) finds them in the table again.
func (p *Proxier) deleteStaleChains(ctx context.Context) (int, error) {
	cutoff := p.now().Add(-StaleChainDelay)
	var due []string
	for c, at := range p.stale {
		if !at.After(cutoff) {
			due = append(due, c)
		}
	}
	if len(due) == 0 {
		return 0, nil
	}
	slices.Sort(due)
	tx := p.nft.NewTransaction()
	for _, c := range due {
		tx.Delete(&knftables.Chain{Name: c})
		delete(p.stale, c)
	}
	if err := p.nft.Run(ctx, tx); err != nil {
		return 0, fmt.Errorf("deleting %d stale chains: %w", len(due), err)
	}
	return len(due), nil
}

// StaleChains returns the chains waiting for deletion, sorted.
func (p *Proxier) StaleChains() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.stale))
	for c := range p.stale {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Status implements proxy.Provider. Its digest is of the last `nft -f` transaction
// applied, as written (a sync with nothing to write keeps the previous one); stale
// chain deletions are not in it. It is hashed here, on demand.
func (p *Proxier) Status() proxy.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state.Status()
	if p.applied != "" {
		st.Digest = proxy.DigestOf([]byte(p.applied), p.appliedGen)
	}
	return st
}

// CheckKernel implements proxy.Provider: false when the jump from nat-prerouting to
// services (written by full syncs only) is gone.
func (p *Proxier) CheckKernel(ctx context.Context) (bool, error) {
	// Before a sync has applied anything there is nothing to find, and the next sync
	// is full anyway: a check that races the first full sync (30 s at 10k × 10 on a
	// loaded machine, make bench-nftables) must not queue a second one behind it.
	if p.state.Applied() == nil {
		return true, nil
	}
	return tablePresent(ctx, p.nft)
}

// AppliedElements returns the element mirror as container → key → value (for tests
// that compare it with what the kernel lists); nil when unknown.
func (p *Proxier) AppliedElements() map[string]map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.elements == nil {
		return nil
	}
	return p.elements.Snapshot()
}
