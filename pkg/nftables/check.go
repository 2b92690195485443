package nftables

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// The full-sync reasons a periodic check gives.
const (
	reasonTableMissing = proxy.ReasonDrift + ": the table's canary is gone"
	reasonDrifted      = proxy.ReasonDrift + ": rules or elements drifted"
)

// CheckPeriodic implements proxy.PeriodicChecker: nftables mode's periodic work, in
// place of kube-proxy's hourly full sync. A full sync at 10k services × 10 endpoints
// rewrites 110k chains, and every rule with a map gets a new anonymous map, which the
// kernel creates in time linear in the table's anonymous sets (minutes on this project's
// machines, bench/results/2026-12-02-nftables): a change waits behind it. The check
// instead reads the table over netlink (a whole-table rule dump, and the shared
// sets and maps) without the sync lock, and compares it with a render of the applied
// snapshot and with the Proxier's element mirror:
//
//   - every chain the render has is there, and no chain it lacks (besides the stale
//     chains waiting for deletion);
//   - each chain holds as many rules as the render writes;
//   - a chain nobody rewrote since the previous check holds the very rules it held
//     then (the digests of their expressions): this catches a rule replaced in place;
//   - the shared sets and maps hold exactly the mirror's elements.
//
// Drift asks for a full sync, which rewrites everything as before. Service ports a sync
// changed while the kernel was read are left to the next check, and the elements are
// compared only when no sync ran meanwhile. A Proxier whose Kernel cannot dump its rules
// (the knftables binary Interface) makes the periodic full sync instead.
func (p *Proxier) CheckPeriodic(ctx context.Context) (proxy.CheckResult, error) {
	start := p.now()
	res, err := p.check(ctx)
	res.Duration = p.now().Sub(start)
	return res, err
}

// checkpoint is what a check reads under the sync lock.
type checkpoint struct {
	applied  *endpoints.Snapshot
	cfg      Config
	lastFull time.Time
	stale    map[string]bool
	elements map[string]map[string]string
	// written are the chains partial syncs wrote since the previous check.
	written map[string]bool
}

// checkpoint reads the Proxier's state; the first of a check (start) also takes the
// chains written since the previous check, and the elements.
func (p *Proxier) checkpoint(start bool) checkpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	cp := checkpoint{applied: p.state.Applied(), cfg: p.renderConfig(), lastFull: p.state.Status().LastFull, stale: map[string]bool{}}
	for c := range p.stale {
		cp.stale[c] = true
	}
	if start {
		if p.elements != nil {
			cp.elements = p.elements.Snapshot()
		}
		cp.written, p.writtenSinceCheck = p.writtenSinceCheck, map[string]bool{}
	}
	return cp
}

// checkMemory is what a check leaves for the next: the rule digests of each chain it
// compared, with the full sync they were read after.
type checkMemory struct {
	lastFull time.Time
	digests  map[string][]uint64
}

func (p *Proxier) check(ctx context.Context) (proxy.CheckResult, error) {
	var res proxy.CheckResult
	dumper, ok := p.nft.(RuleDumper)
	if !ok {
		p.state.RequestFull(proxy.ReasonPeriodic)
		res.FullSyncReason = proxy.ReasonPeriodic
		return res, nil
	}
	before := p.checkpoint(true)
	// The chains written since the previous check were just taken: unless this
	// check completes, the next one has nothing to compare digests with.
	previous := p.memory
	p.memory = checkMemory{}
	if before.applied == nil {
		res.Skipped = "no state known to be applied: the next sync is full"
		return res, nil
	}
	readStart := p.now()
	present, err := tablePresent(ctx, p.nft)
	if err != nil {
		return res, err
	}
	if !present {
		p.state.RequestFull(reasonTableMissing)
		res.FullSyncReason = reasonTableMissing
		return res, nil
	}
	chains, err := p.nft.List(ctx, "chain")
	if err != nil {
		return res, fmt.Errorf("listing chains: %w", err)
	}
	rules, err := dumper.DumpRules(ctx)
	if err != nil {
		return res, fmt.Errorf("reading the rules: %w", err)
	}
	kernelElements := map[string]map[string]string{}
	for _, c := range containers {
		if kernelElements[c], err = listElements(ctx, p.nft, c); err != nil {
			return res, fmt.Errorf("listing %s: %w", c, err)
		}
	}
	readTime := p.now().Sub(readStart)

	after := p.checkpoint(false)
	if after.applied == nil || !after.lastFull.Equal(before.lastFull) {
		res.Skipped = "a sync rewrote everything, or failed, while the kernel was read"
		return res, nil
	}
	changed, ok := after.applied.SortedChangedSince(before.applied)
	if !ok {
		res.Skipped = "too many snapshots were applied while the kernel was read"
		return res, nil
	}
	compareStart := p.now()
	want, err := wantedRuleCounts(ctx, after.applied, &after.cfg)
	if err != nil {
		return res, err
	}
	skip := serviceChains(before.applied, after.applied, changed, &after.cfg)
	maps.Copy(before.stale, after.stale)
	in := driftInput{want: want, skip: skip, stale: before.stale, chains: chains, rules: rules}
	if previous.digests != nil && previous.lastFull.Equal(after.lastFull) {
		in.previous, in.rewritten = previous.digests, before.written
	}
	d := findDrift(in)
	if len(changed) == 0 {
		d.chains = append(d.chains, elementDrift(before.elements, kernelElements)...)
	}
	p.memory = checkMemory{lastFull: after.lastFull, digests: d.digests}
	res.Compared, res.Drifted = d.compared, d.chains
	res.Details = []any{"read", readTime, "compare", p.now().Sub(compareStart), "changedWhileRead", len(changed),
		"elementsCompared", len(changed) == 0, "digestsCompared", in.previous != nil}
	if len(d.chains) > 0 {
		p.state.RequestFull(reasonDrifted)
		res.FullSyncReason = reasonDrifted
	}
	return res, nil
}

// wantedRuleCounts renders the applied snapshot's chains: the fixed ones through a
// Fake (what a full sync writes before any service), the services' from their objects,
// each with its number of rules.
func wantedRuleCounts(ctx context.Context, snap *endpoints.Snapshot, cfg *Config) (map[string]int, error) {
	fake := knftables.NewFake(cfg.NFTFamily(), TableName)
	tx := fake.NewTransaction()
	writeSetup(tx, cfg, false)
	if err := fake.Run(ctx, tx); err != nil {
		return nil, fmt.Errorf("rendering the fixed chains: %w", err)
	}
	want := map[string]int{}
	for name, c := range fake.Table.Chains {
		want[name] = len(c.Rules)
	}
	for _, name := range snap.SortedServices() {
		objs := renderService(snap.Services[name], snap.Endpoints[name], cfg)
		if objs == nil {
			continue
		}
		for _, c := range objs.chains {
			want[c.name] = len(c.rules)
		}
	}
	return want, nil
}

// serviceChains returns the chains the service ports in names own in either snapshot.
func serviceChains(a, b *endpoints.Snapshot, names []endpoints.ServicePortName, cfg *Config) map[string]bool {
	out := map[string]bool{}
	for _, snap := range []*endpoints.Snapshot{a, b} {
		for _, name := range names {
			port, ok := snap.Services[name]
			if !ok {
				continue
			}
			if objs := renderService(port, snap.Endpoints[name], cfg); objs != nil {
				for _, c := range objs.chains {
					out[c.name] = true
				}
			}
		}
	}
	return out
}

// driftInput is what findDrift compares.
type driftInput struct {
	// want is each chain of the render with its number of rules; skip are the chains
	// a sync may have rewritten while the kernel was read; stale the chains waiting
	// for deletion.
	want  map[string]int
	skip  map[string]bool
	stale map[string]bool
	// chains are the table's chains, rules their rules (a chain without rules is
	// not in the dump).
	chains []string
	rules  map[string][]KernelRule
	// previous are the digests of the previous check (nil: none to compare with);
	// rewritten the chains a sync rewrote since.
	previous  map[string][]uint64
	rewritten map[string]bool
}

// drift is what findDrift found.
type drift struct {
	compared int
	// chains are the drifted chains, each "chain: why", sorted.
	chains []string
	// digests are the compared chains' rule digests, for the next check.
	digests map[string][]uint64
}

// findDrift compares the kernel's chains with the render's (a pure function).
func findDrift(in driftInput) drift {
	d := drift{digests: map[string][]uint64{}}
	inKernel := map[string]bool{}
	for _, c := range in.chains {
		inKernel[c] = true
		if _, wanted := in.want[c]; !wanted && !in.stale[c] && !in.skip[c] {
			d.chains = append(d.chains, c+": not rendered")
		}
	}
	for _, c := range slices.Sorted(maps.Keys(in.want)) {
		if in.skip[c] {
			continue
		}
		d.compared++
		rules := in.rules[c]
		switch {
		case !inKernel[c]:
			d.chains = append(d.chains, c+": missing")
			continue
		case len(rules) != in.want[c]:
			d.chains = append(d.chains, fmt.Sprintf("%s: %d rules, want %d", c, len(rules), in.want[c]))
			continue
		}
		digests := make([]uint64, len(rules))
		for i, r := range rules {
			digests[i] = r.Digest
		}
		if prev, ok := in.previous[c]; ok && !in.rewritten[c] && !slices.Equal(prev, digests) {
			d.chains = append(d.chains, c+": rules changed since the previous check")
			continue
		}
		d.digests[c] = digests
	}
	slices.Sort(d.chains)
	return d
}

// elementDrift compares the mirror with the kernel's elements, container by container.
func elementDrift(mirror, kernel map[string]map[string]string) []string {
	var out []string
	for _, c := range containers {
		want, got := mirror[c], kernel[c]
		missing, extra, differ := 0, 0, 0
		for k, v := range want {
			if gv, ok := got[k]; !ok {
				missing++
			} else if gv != v {
				differ++
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				extra++
			}
		}
		if missing+extra+differ > 0 {
			out = append(out, fmt.Sprintf("%s: %d elements missing, %d unexpected, %d with another value", c, missing, extra, differ))
		}
	}
	return out
}
