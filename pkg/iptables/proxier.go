package iptables

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// Proxier programs one IP family's iptables from snapshots. Each Sync decides
// explicitly between a full and a partial render, renders (pure), and applies with one
// iptables-restore. It is driven by one goroutine; RequestFullSync may be called from
// any.
type Proxier struct {
	cfg            *Config
	ipt            xtables.Interface
	fullSyncPeriod time.Duration
	now            func() time.Time

	// applied is the last snapshot whose rules are known to be in the kernel; nil
	// when unknown (at start, and after a failed apply).
	applied  *endpoints.Snapshot
	lastFull time.Time
	// rendered is the Config renders use: cfg plus whether the nfacct counters
	// exist, decided at each full sync.
	rendered Config
	needFull atomic.Bool
}

// NewProxier returns a Proxier for cfg's family. A full sync runs at least every
// fullSyncPeriod (0 disables the periodic full sync); now is the clock.
func NewProxier(cfg *Config, ipt xtables.Interface, fullSyncPeriod time.Duration, now func() time.Time) (*Proxier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("iptables proxier: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Proxier{cfg: cfg, ipt: ipt, fullSyncPeriod: fullSyncPeriod, now: now, rendered: *cfg}, nil
}

// Config returns the proxier's Config.
func (p *Proxier) Config() *Config { return p.cfg }

// SyncResult describes one sync.
type SyncResult struct {
	// Full is true when the whole ruleset was rewritten.
	Full bool
	// Reason says why a sync was full.
	Reason string
	// Stats counts what the payload wrote.
	Stats Stats
	// PayloadBytes is the size of the restore input.
	PayloadBytes int
	// Restores is the number of iptables-restore runs the payload took (see
	// xtables.ChainLimiter).
	Restores int
	// RenderTime and ApplyTime split the sync's duration.
	RenderTime, ApplyTime time.Duration
}

// RequestFullSync makes the next Sync a full one: after the canary chain disappeared,
// or when the node's facts changed.
func (p *Proxier) RequestFullSync() { p.needFull.Store(true) }

// fullSyncReason returns why the next sync must be full, or "" for a partial one.
func (p *Proxier) fullSyncReason(snap *endpoints.Snapshot) string {
	switch {
	case p.applied == nil:
		return "no rules known to be applied (start, or a failed apply)"
	case p.needFull.Load():
		return "requested"
	case snap.Generation != p.applied.Generation+1:
		return "snapshot does not follow the applied one"
	case p.fullSyncPeriod > 0 && p.now().Sub(p.lastFull) >= p.fullSyncPeriod:
		return "periodic"
	}
	return ""
}

// Sync programs snap. On failure nothing is assumed about the kernel and the next sync
// is full; the caller keeps the changes pending by retrying with a newer snapshot.
func (p *Proxier) Sync(ctx context.Context, snap *endpoints.Snapshot) (SyncResult, error) {
	var res SyncResult
	res.Reason = p.fullSyncReason(snap)
	res.Full = res.Reason != ""
	prev := p.applied
	p.applied = nil // until this sync succeeds

	start := p.now()
	var plan *Plan
	var existingNAT []string
	if res.Full {
		p.needFull.Store(false)
		if err := p.ensureHooks(ctx); err != nil {
			p.needFull.Store(true)
			return res, err
		}
		p.rendered.NFAcctCounters = p.ensureCounters()
		existing, err := p.ipt.ChainNames(ctx, "nat")
		if err != nil {
			p.needFull.Store(true)
			return res, fmt.Errorf("listing nat chains to find stale ones: %w", err)
		}
		plan = Render(snap, &p.rendered, existing)
		existingNAT = existing
	} else {
		var err error
		plan, err = RenderPartial(prev, snap, &p.rendered)
		if err != nil {
			return res, err
		}
	}
	res.Stats, res.PayloadBytes = plan.Stats, len(plan.Payload)
	res.RenderTime = p.now().Sub(start)

	// A payload that declares many chains goes in several restores where the backend
	// needs it (see xtables.ChainLimiter): a cold full sync, and partial syncs that add many
	// services at once (a burst of new Services, or the rest of them when the first
	// full sync ran before every informer event had been handled).
	restores := func(yield func([]byte) bool) { yield(plan.Payload) }
	if limiter, ok := p.ipt.(xtables.ChainLimiter); ok {
		restores = SplitPayload(plan.Payload, limiter.MaxChainsPerRestore(), existingNAT)
	}
	applyStart := p.now()
	var err error
	for payload := range restores {
		res.Restores++
		if err = p.ipt.Restore(ctx, payload); err != nil {
			break
		}
	}
	res.ApplyTime = p.now().Sub(applyStart)
	if err != nil {
		p.needFull.Store(true)
		kind := "partial"
		if res.Full {
			kind = "full"
		}
		return res, fmt.Errorf("applying %s payload (%d bytes): %w", kind, len(plan.Payload), err)
	}
	p.applied = snap
	if res.Full {
		p.lastFull = applyStart
	}
	return res, nil
}

// ensureHooks creates Switchyard's chains and the jumps to them from the built-in
// chains, plus the canary chains. Hooks live outside the restore payload because a
// restore cannot add a rule only when it is missing.
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

// CanaryPresent reports whether the canary chains still exist. When one is gone,
// something flushed the tables (a firewall reload, a careless script) and every rule
// must be rewritten.
func (p *Proxier) CanaryPresent(ctx context.Context) (bool, error) {
	return xtables.CanaryPresent(ctx, p.ipt)
}
