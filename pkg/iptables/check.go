package iptables

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// tableSaver reads one table as iptables-save prints it: xtables.Exec and the fake
// both do. A Proxier over an Interface without it keeps the periodic full sync.
type tableSaver interface {
	SaveTable(ctx context.Context, table xtables.Table) ([]byte, error)
}

// maxRepairChains bounds a repair: more drifted chains than one restore should
// declare (see xtables.ChainLimiter) are a full sync's job, which splits its payload.
const maxRepairChains = 1000

// checkReasons, the full-sync reasons a periodic check gives.
const (
	reasonHooksMissing  = proxy.ReasonDrift + ": hook jumps missing"
	reasonCanaryMissing = proxy.ReasonDrift + ": canary chain missing"
	reasonRepairFailed  = proxy.ReasonDrift + ": rewriting the drifted chains failed"
)

// CheckPeriodic implements proxy.PeriodicChecker: the periodic full sync of iptables
// mode. A periodic full sync at 10k services × 10 endpoints rewrites 110k chains in
// restores that take seconds, during which a change waits (kube-proxy v1.37 skips its
// hourly full sync on clusters of more than 1,000 endpoints for that reason:
// largeClusterMode, kubernetes#137085). Instead the check reads the filter and nat
// tables (iptables-save) and compares them with a full render of the applied snapshot,
// all without the sync lock, so partial syncs go on meanwhile; it then rewrites, under
// the lock and in one restore, only the chains that drifted. It asks for a full sync
// when the hooks or canaries are gone (the tables were flushed: a full sync also
// re-creates the hooks), when more than maxRepairChains drifted, or when the repair
// fails. Service ports a sync changed while the kernel was read are left to the next
// check.
func (p *Proxier) CheckPeriodic(ctx context.Context) (proxy.CheckResult, error) {
	start := p.now()
	res, err := p.check(ctx)
	res.Duration = p.now().Sub(start)
	return res, err
}

// checkpoint is what a check reads under the sync lock: the applied snapshot, the
// Config renders use, and when the last full sync began.
func (p *Proxier) checkpoint() (*endpoints.Snapshot, Config, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.Applied(), p.rendered, p.state.Status().LastFull
}

func (p *Proxier) check(ctx context.Context) (proxy.CheckResult, error) {
	var res proxy.CheckResult
	saver, ok := p.ipt.(tableSaver)
	if !ok {
		p.state.RequestFull(proxy.ReasonPeriodic)
		res.FullSyncReason = proxy.ReasonPeriodic
		return res, nil
	}
	base, _, lastFull := p.checkpoint()
	if base == nil {
		res.Skipped = "no state known to be applied: the next sync is full"
		return res, nil
	}
	readStart := p.now()
	var saved []byte
	for _, table := range []xtables.Table{xtables.TableFilter, xtables.TableNAT} {
		out, err := saver.SaveTable(ctx, table)
		if err != nil {
			return res, fmt.Errorf("reading the %s table: %w", table, err)
		}
		saved = append(saved, out...)
	}
	readTime := p.now().Sub(readStart)
	after, cfg, lastFullAfter := p.checkpoint()
	if after == nil || !lastFullAfter.Equal(lastFull) {
		res.Skipped = "a sync rewrote everything, or failed, while the kernel was read"
		return res, nil
	}
	changed, ok := after.SortedChangedSince(base)
	if !ok {
		res.Skipped = "too many snapshots were applied while the kernel was read"
		return res, nil
	}
	compareStart := p.now()
	family := rulesetFamily(p.cfg.Family)
	kernel, err := parseTables(string(saved))
	if err != nil {
		return res, fmt.Errorf("reading the kernel's rules: %w", err)
	}
	natChains := kernel.chainNames("nat")
	plan := Render(after, &cfg, natChains)
	if p.verified == nil {
		p.verified = newVerifiedChains()
	}
	d, err := findDrift(kernel, string(plan.Payload), Hooks(p.cfg), family, changedServices(base, after, changed, &cfg), p.verified)
	if err != nil {
		return res, err
	}
	res.Compared, res.Drifted = d.compared, d.chains
	res.Details = []any{"bytesRead", len(saved), "read", readTime, "compare", p.now().Sub(compareStart),
		"changedWhileRead", len(changed)}
	switch {
	case d.canaryMissing:
		res.FullSyncReason = reasonCanaryMissing
	case len(d.hooksMissing) > 0:
		res.FullSyncReason = reasonHooksMissing + " (" + strings.Join(d.hooksMissing, "; ") + ")"
	case len(d.chains) > maxRepairChains:
		res.FullSyncReason = fmt.Sprintf("%s: %d chains drifted", proxy.ReasonDrift, len(d.chains))
	}
	if res.FullSyncReason != "" {
		p.state.RequestFull(res.FullSyncReason)
		return res, nil
	}
	if len(d.chains) == 0 {
		return res, nil
	}
	return res, p.repair(ctx, after, plan, natChains, d.chains, &res)
}

// repair rewrites the drifted chains as a full render of the applied snapshot writes
// them, under the sync lock: the render the check compared with if no sync ran since,
// else a fresh one (rare: drift is).
func (p *Proxier) repair(ctx context.Context, rendered *endpoints.Snapshot, plan *Plan, natChains, chains []string, res *proxy.CheckResult) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	applied := p.state.Applied()
	if applied == nil {
		res.Skipped = "a sync failed before the repair: the next sync is full"
		return nil
	}
	if applied != rendered {
		plan = Render(applied, &p.rendered, natChains)
	}
	payload := repairPayload(plan.Payload, chains)
	if len(payload) == 0 {
		return nil
	}
	if err := p.ipt.Restore(ctx, payload); err != nil {
		p.state.RequestFull(reasonRepairFailed)
		res.FullSyncReason = reasonRepairFailed
		return fmt.Errorf("rewriting %d drifted chains: %w", len(chains), err)
	}
	res.Repaired = true
	res.Details = append(res.Details, "repairBytes", len(payload))
	// The kernel now holds the full render's rules: the totals are the render's.
	p.filterRules, p.natRules = plan.Stats.FilterRules, plan.Stats.NATRules
	return nil
}
