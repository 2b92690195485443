package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// cleanupOptions are the flags of `switchyard cleanup`.
type cleanupOptions struct {
	dryRun  bool
	backend string
}

// register adds cleanup's flags to fs.
func (o *cleanupOptions) register(fs *pflag.FlagSet) {
	fs.BoolVar(&o.dryRun, "dry-run", false, "print what would be deleted, delete nothing")
	fs.StringVar(&o.backend, "iptables-backend", "all", "iptables backend to clean: all, nft or legacy")
}

// cleanupCommand implements `switchyard cleanup`: remove every rule, chain and ipset
// that Switchyard (or kube-proxy, in either mode) created, and nothing else. It works
// offline, from the kernel's state alone, is idempotent, and exits non-zero if anything
// it owns is left afterwards.
func cleanupCommand(ctx context.Context, opts *cleanupOptions, stdout, stderr io.Writer) int {
	var backends []xtables.Backend
	switch opts.backend {
	case "all", "":
		backends = []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy}
	default:
		b, err := xtables.ParseBackend(opts.backend)
		if err != nil || b == "" {
			fmt.Fprintf(stderr, "switchyard: --iptables-backend %q: want all, nft or legacy\n", opts.backend)
			return 2
		}
		backends = []xtables.Backend{b}
	}

	var errs []error
	if err := cleanIPVS(ctx, stdout, backends[0], opts.dryRun); err != nil {
		errs = append(errs, err)
	}
	for _, backend := range backends {
		for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
			if err := cleanIPTables(ctx, stdout, backend, family, opts.dryRun); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := cleanIPSets(ctx, stdout, opts.dryRun); err != nil {
		errs = append(errs, err)
	}
	if err := cleanNFTables(ctx, stdout, opts.dryRun); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "switchyard: cleanup incomplete: %v\n", err)
		return 1
	}
	return 0
}

// cleanIPTables removes Switchyard's chains from one family and backend, then checks
// that none is left.
func cleanIPTables(ctx context.Context, stdout io.Writer, backend xtables.Backend, family v1.IPFamily, dryRun bool) error {
	ipt, err := xtables.NewExec(family, backend, 5*time.Second)
	if err != nil || !ipt.Available() {
		fmt.Fprintf(stdout, "# %s %s: iptables programs not installed, skipped\n", family, backend)
		return nil
	}
	var plan *iptables.CleanupPlan
	if dryRun {
		save, err := ipt.SaveAll(ctx)
		if err != nil {
			return err
		}
		plan = iptables.PlanCleanup(save)
	} else {
		plan, err = iptables.Cleanup(ctx, ipt)
		if err != nil {
			return fmt.Errorf("%s %s: %w", family, backend, err)
		}
	}
	if len(plan.Payload) == 0 {
		fmt.Fprintf(stdout, "# %s %s: nothing to remove\n", family, backend)
		return nil
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(stdout, "# %s %s: %s %d chains and %d jumps\n", family, backend, verb, len(plan.Chains), len(plan.HookRules))
	for _, c := range plan.Chains {
		fmt.Fprintf(stdout, "chain %s\n", c)
	}
	for _, r := range plan.HookRules {
		fmt.Fprintf(stdout, "rule  %s\n", r)
	}
	return nil
}

// cleanIPSets destroys the KUBE- ipsets that IPVS mode creates. They can only go once
// no iptables rule refers to them, so this runs after the iptables cleanup.
func cleanIPSets(ctx context.Context, stdout io.Writer, dryRun bool) error {
	if _, err := exec.LookPath("ipset"); err != nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, "ipset", "list", "-n").Output()
	if err != nil {
		// No ip_set module: there are no sets to clean.
		return nil
	}
	var errs []error
	for _, name := range strings.Fields(string(out)) {
		if !strings.HasPrefix(name, "KUBE-") {
			continue
		}
		if dryRun {
			fmt.Fprintf(stdout, "ipset %s (would destroy)\n", name)
			continue
		}
		fmt.Fprintf(stdout, "ipset %s\n", name)
		if msg, err := exec.CommandContext(ctx, "ipset", "destroy", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ipset destroy %s: %w: %s", name, err, strings.TrimSpace(string(msg))))
		}
	}
	return errors.Join(errs...)
}

// cleanIPVS removes the virtual servers on kube-ipvs0's addresses and the interface
// itself; foreign virtual servers stay. Without IPVS in the kernel there is nothing to
// do.
func cleanIPVS(ctx context.Context, stdout io.Writer, backend xtables.Backend, dryRun bool) error {
	handle, err := ipvs.NewIPVS()
	if err != nil {
		fmt.Fprintf(stdout, "# IPVS: not available in this kernel, skipped\n")
		return nil
	}
	if dryRun {
		fmt.Fprintf(stdout, "# IPVS: would remove the virtual servers on %s's addresses and the interface\n", ipvs.DummyInterface)
		return nil
	}
	ipt, err := xtables.NewExec(v1.IPv4Protocol, backend, 5*time.Second)
	if err != nil {
		return err
	}
	kernel := ipvs.Kernel{IPVS: handle, Links: ipvs.NewLinks(), IPSets: ipvs.NewNetlinkIPSets(), IPTables: ipt, Sysctl: ipvs.ProcSysctl{}}
	p, err := ipvs.NewProxier(&ipvs.Config{FamilyConfig: node.FamilyConfig{Family: v1.IPv4Protocol}}, kernel, 0, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# IPVS: removing the virtual servers on %s's addresses\n", ipvs.DummyInterface)
	return p.Cleanup(ctx)
}
