package iptables

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// Proxier programs one IP family's iptables from snapshots: iptables mode's
// proxy.Provider. Each Sync asks its SyncState for a full or partial sync, renders
// (pure), and applies with one iptables-restore, or several where the backend needs
// it (xtables.ChainLimiter). It is driven by one goroutine;
// RequestFullSync and CheckKernel may be called from any.
type Proxier struct {
	cfg   *Config
	ipt   xtables.Interface
	now   func() time.Time
	state *proxy.SyncState

	// filterRules and natRules count the rules the kernel holds after the last
	// successful sync (kube-proxy's sync_proxy_rules_iptables_total): set by a full
	// sync, moved by each partial one. Only the sync goroutine uses them.
	filterRules, natRules int
	// rendered is the Config renders use: cfg plus whether the nfacct counters
	// exist, decided at each full sync. Only the sync goroutine uses it.
	rendered Config

	// verified remembers the chains the last periodic check found as applied (see
	// findDrift). Only CheckPeriodic uses it, one call at a time.
	verified *verifiedChains

	// mu is held for a whole sync, so that Status never reports half of one.
	mu sync.Mutex
	// digest identifies the last restore payload applied (see proxy.AppliedDigest).
	digest proxy.AppliedDigest
}

var (
	_ proxy.Provider        = &Proxier{}
	_ proxy.PeriodicChecker = &Proxier{}
)

// NewProxier returns a Proxier for cfg's family; now is the clock. fullSyncPeriod is
// the period of the periodic full sync (0: none) when ipt cannot be read back with
// iptables-save; when it can (xtables.Exec and the fake), the Proxier makes no
// periodic full sync and the caller calls CheckPeriodic every fullSyncPeriod instead
// (see check.go).
func NewProxier(cfg *Config, ipt xtables.Interface, fullSyncPeriod time.Duration, now func() time.Time) (*Proxier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("iptables proxier: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	if _, ok := ipt.(tableSaver); ok {
		fullSyncPeriod = 0
	}
	return &Proxier{cfg: cfg, ipt: ipt, now: now, state: proxy.NewSyncState(fullSyncPeriod, now), rendered: *cfg}, nil
}

// Family returns the IP family the proxier programs.
func (p *Proxier) Family() v1.IPFamily { return p.cfg.Family }

// SyncResult describes one sync in iptables mode's terms.
type SyncResult struct {
	// Full is true when the whole ruleset was rewritten.
	Full bool
	// Reason says why a sync was full.
	Reason string
	// Stats counts what the payload wrote.
	Stats Stats
	// Payload is the restore input, before splitting.
	Payload []byte
	// PayloadBytes is the size of the restore input.
	PayloadBytes int
	// Restores is the number of iptables-restore runs the payload took (see
	// xtables.ChainLimiter).
	Restores int
	// RenderTime and ApplyTime split the sync's duration.
	RenderTime, ApplyTime time.Duration
	// RestoreFailed is true when an iptables-restore failed.
	RestoreFailed bool
}

// RequestFullSync makes the next Sync a full one: after the canary chain disappeared,
// or when the node's facts changed.
func (p *Proxier) RequestFullSync(reason string) { p.state.RequestFull(reason) }

// Sync implements proxy.Provider: SyncDetailed, summed up.
func (p *Proxier) Sync(ctx context.Context, snap *endpoints.Snapshot) (proxy.Result, error) {
	res, err := p.SyncDetailed(ctx, snap)
	out := proxy.Result{
		Full: res.Full, Reason: res.Reason, Duration: res.RenderTime + res.ApplyTime, RestoreFailed: res.RestoreFailed,
		RulesWritten: map[string]int{"filter": res.Stats.FilterWritten, "nat": res.Stats.NATWritten},
		Details: []any{"servicePorts", res.Stats.Services, "chains", res.Stats.Chains, "rules", res.Stats.Rules,
			"deletedChains", res.Stats.DeletedChains, "bytes", res.PayloadBytes, "restores", res.Restores,
			"render", res.RenderTime, "apply", res.ApplyTime},
	}
	if res.Payload != nil || res.PayloadBytes > 0 { // a streamed full sync keeps only its size
		out.Payloads = []proxy.Payload{{Kind: proxy.PayloadIPTablesRestore, Data: res.Payload, Bytes: res.PayloadBytes}}
	}
	if err == nil {
		out.RulesTotal = map[string]int{"filter": p.filterRules, "nat": p.natRules}
	}
	return out, err
}

// SyncDetailed programs snap and reports it in iptables mode's terms. On failure
// nothing is assumed about the kernel and the next sync is full; the caller keeps the
// changes pending by retrying with a newer snapshot.
func (p *Proxier) SyncDetailed(ctx context.Context, snap *endpoints.Snapshot) (SyncResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var res SyncResult
	d := p.state.Begin(snap)
	res.Full, res.Reason = d.Full, d.Reason
	restores, err := p.render(ctx, snap, d)
	res.RenderTime = p.now().Sub(d.Started)
	if err != nil {
		p.state.Failed()
		return res, err
	}
	applyStart := p.now()
	digest, err := p.apply(ctx, restores, &res)
	res.ApplyTime = p.now().Sub(applyStart)
	if err != nil {
		p.state.Failed()
		res.RestoreFailed = true
		return res, fmt.Errorf("applying %s payload (%d bytes): %w", proxy.SyncKind(res.Full), res.PayloadBytes, err)
	}
	p.state.Succeeded(snap)
	if res.PayloadBytes > 0 {
		digest.Generation = snap.Generation
		p.digest = digest
	}
	if res.Full {
		p.filterRules, p.natRules = res.Stats.FilterRules, res.Stats.NATRules
	} else {
		p.filterRules += res.Stats.FilterDelta
		p.natRules += res.Stats.NATDelta
	}
	return res, nil
}

// render computes the plan d asks for. A full one first reads the kernel's tables,
// for the stale chains to delete and the hooks to add (see readTables).
func (p *Proxier) render(ctx context.Context, snap *endpoints.Snapshot, d proxy.Decision) (*Restores, error) {
	if !d.Full {
		return WholeRestores(RenderPartial(d.Base, snap, d.Changed, &p.rendered), p.maxChainsPerRestore(), nil), nil
	}
	existing, err := p.readTables(ctx)
	if err != nil {
		return nil, err
	}
	p.rendered.NFAcctCounters = p.ensureCounters()
	return RenderRestores(snap, &p.rendered, existing, p.maxChainsPerRestore()), nil
}

// ensureHooks creates Switchyard's chains and the jumps to them from the built-in
// chains, plus the canary chains, one iptables process at a time: for an Interface
// that cannot scan tables, so that the payload cannot carry them (see readTables).
func (p *Proxier) ensureHooks(ctx context.Context) error {
	return errors.Join(xtables.EnsureHooks(ctx, p.ipt, Hooks(p.cfg)), xtables.EnsureCanary(ctx, p.ipt))
}

// ensureCounters creates kube-proxy's nfacct counters, as kube-proxy does before each
// full sync, and reports whether both exist. A rule naming a missing counter would
// make the whole restore fail, so without them the rules are written uncounted.
func (p *Proxier) ensureCounters() bool {
	if p.cfg.NFAcct == nil {
		return false
	}
	for _, name := range []string{nfacct.CounterInvalidDropped, nfacct.CounterLocalhostNodePorts} {
		if err := p.cfg.NFAcct.Ensure(name); err != nil {
			return false
		}
	}
	return true
}

// Status implements proxy.Provider. Its digest is of the last iptables-restore input
// applied, unsplit: what -v=9 logs as the payload, and what the kernel received when
// it took one restore.
func (p *Proxier) Status() proxy.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state.Status()
	st.Digest = p.digest
	return st
}

// CheckKernel implements proxy.Provider with the canary chains: when one is gone,
// something flushed the tables (a firewall reload, a careless script) and every rule
// must be rewritten.
func (p *Proxier) CheckKernel(ctx context.Context) (bool, error) {
	// Before a sync has applied anything there is no canary to find, and the next
	// sync is full anyway: a check that races a slow first sync (seconds at 10k
	// services) must not queue a second full sync behind it.
	if p.state.Applied() == nil {
		return true, nil
	}
	return xtables.CanaryPresent(ctx, p.ipt)
}
