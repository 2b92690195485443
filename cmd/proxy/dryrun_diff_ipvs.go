package main

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/rulediff"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// ipvsKernel is what dry-run --diff reads in IPVS mode, per family.
type ipvsKernel struct {
	table    ipvs.Interface
	links    ipvs.Links
	sets     ipvs.IPSets
	iptables tableSaver
}

// dryRunDiffIPVS is dry-run --diff in IPVS mode: per family, the IPVS table (in
// `ipvsadm -Sn` form), kube-ipvs0's addresses, the ipsets and the companion iptables
// rules, each diffed against what a full sync would leave.
func dryRunDiffIPVS(ctx context.Context, ipvsOpts *ipvsDryRunOptions, diffOpts *diffDryRunOptions, backend xtables.Backend,
	iptConfigs []*iptables.Config, snap *endpoints.Snapshot, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "switchyard: "+format+"\n", args...)
		return diffError
	}
	if !ipvs.ValidScheduler(ipvsOpts.scheduler) {
		return fail("--ipvs-scheduler %q: want one of %v", ipvsOpts.scheduler, ipvs.Schedulers)
	}
	handle, err := ipvs.NewIPVS()
	if err != nil {
		return fail("reading the IPVS table: %v", err)
	}
	defer handle.Close()
	status := diffInSync
	for _, ic := range iptConfigs {
		cfg := ipvsConfigFrom(ic, ipvsOpts.scheduler, ipvsOpts.strictARP)
		cfg.ExcludeCIDRs = diffOpts.ipvsExcludeCIDRs
		if err := cfg.Validate(); err != nil {
			return fail("%s: %v", cfg.Family, err)
		}
		ipt, err := xtables.NewExec(cfg.Family, backend, 5*time.Second)
		if err != nil {
			return fail("%v", err)
		}
		k := ipvsKernel{table: handle, links: ipvs.NewLinks(), sets: ipvs.NewNetlinkIPSets(), iptables: ipt}
		diffs, err := diffFamilyIPVS(ctx, k, cfg, snap)
		if err != nil {
			return fail("%s: %v", cfg.Family, err)
		}
		if status, err = writeDiffs(stdout, diffs, status); err != nil {
			return fail("writing output: %v", err)
		}
	}
	return status
}

// diffFamilyIPVS compares one family's IPVS state and companion rules with what a full
// sync for snap would leave. The diffs come IPVS table first, then addresses, ipsets
// and the iptables tables.
func diffFamilyIPVS(ctx context.Context, k ipvsKernel, cfg *ipvs.Config, snap *endpoints.Snapshot) ([]rulediff.TableDiff, error) {
	ks, err := ipvs.ReadKernel(ctx, cfg.Family, k.table, k.links, k.sets)
	if err != nil {
		return nil, err
	}
	family := "ip"
	if cfg.Family == v1.IPv6Protocol {
		family = "ip6"
	}
	var out []rulediff.TableDiff
	for _, sec := range ipvs.FullSyncDiff(cfg, ipvs.Render(snap, cfg), ks) {
		diff, err := rulediff.Unified("kernel "+family+" "+sec.Name, "switchyard "+family+" "+sec.Name, sec.Kernel, sec.Synced)
		if err != nil {
			return nil, err
		}
		out = append(out, rulediff.TableDiff{Table: sec.Name, Diff: diff})
	}
	// The companion rules are written whole at each full sync and never edited by
	// partial ones, so every chain is compared in order: in IPVS mode the order of
	// KUBE-SERVICES matters (masquerade marks before the ACCEPTs).
	rules := func([]string) []byte { return ipvs.RenderRules(cfg) }
	tables, err := compareRules(ctx, k.iptables, cfg.Family, rules, ipvs.Hooks(), nil)
	if err != nil {
		return nil, err
	}
	return append(out, tables...), nil
}
