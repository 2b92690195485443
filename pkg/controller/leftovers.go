package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// leftoverModes returns the modes whose rules the daemon removes when it starts in
// mode, as kube-proxy v1.37's platformCleanup does on every start (not only after a
// switch: it cannot know the previous mode): nftables mode removes what iptables and
// IPVS modes left, which would otherwise keep DNATing with stale rules from nat
// PREROUTING and OUTPUT; iptables and IPVS modes remove the nftables table. The
// mode about to be programmed is never in the list, and neither is the other
// iptables-based mode (iptables and IPVS modes share chains such as KUBE-SERVICES,
// and kube-proxy leaves those to the mode's own full sync).
func leftoverModes(mode string) []string {
	switch mode {
	case "nftables":
		// iptables first: the IPVS cleanup destroys ipsets, which the kernel
		// refuses while an iptables rule still refers to them.
		return []string{"iptables", "ipvs"}
	case "iptables", "ipvs":
		return []string{"nftables"}
	}
	return nil
}

// leftoverKernel opens the kernel interfaces the start-up cleanup works on. New sets
// the real ones; a Controller from newController (tests) has none and cleans nothing
// unless a test sets fakes.
type leftoverKernel struct {
	// iptables opens one family's iptables on one backend; nil and no error when
	// that backend's programs are not installed.
	iptables func(ctx context.Context, family v1.IPFamily, backend xtables.Backend) (iptables.CleanupKernel, error)
	// ipvs opens IPVS and its companions for one family; nil and no error when the
	// kernel has no IPVS (there can be no virtual servers then).
	ipvs func(ctx context.Context, family v1.IPFamily) (*ipvs.Kernel, error)
	// nftables opens one family's kube-proxy table.
	nftables func(ctx context.Context, family v1.IPFamily) (nftables.Kernel, error)
}

// leftoverFamilies are cleaned whatever families the node has: a leftover of a
// single-stack kube-proxy may be in either.
var leftoverFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}

// realLeftoverKernel opens the host's iptables (both backends), IPVS and nftables.
func realLeftoverKernel(lockWait time.Duration) *leftoverKernel {
	openIPTables := func(family v1.IPFamily, backend xtables.Backend) (*xtables.Exec, error) {
		ipt, err := xtables.NewExec(family, backend, lockWait)
		if err != nil {
			return nil, err
		}
		if !ipt.Available() {
			return nil, nil
		}
		return ipt, nil
	}
	return &leftoverKernel{
		iptables: func(_ context.Context, family v1.IPFamily, backend xtables.Backend) (iptables.CleanupKernel, error) {
			ipt, err := openIPTables(family, backend)
			if ipt == nil { // a nil *Exec must not become a non-nil interface
				return nil, err
			}
			return ipt, nil
		},
		ipvs: func(_ context.Context, family v1.IPFamily) (*ipvs.Kernel, error) {
			handle, err := ipvs.NewIPVS()
			if err != nil {
				return nil, nil // no IPVS in this kernel, as kube-proxy's modprobe check
			}
			// The IPVS cleanup's own iptables step finds nothing once the iptables
			// cleanup ran on both backends; it needs one that is installed.
			for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
				ipt, err := openIPTables(family, backend)
				if err != nil {
					return nil, err
				}
				if ipt != nil {
					return &ipvs.Kernel{IPVS: handle, Links: ipvs.NewLinks(), IPSets: ipvs.NewNetlinkIPSets(), IPTables: ipt, Sysctl: ipvs.ProcSysctl{}}, nil
				}
			}
			return nil, fmt.Errorf("IPVS is loaded but no iptables programs are installed")
		},
		nftables: func(_ context.Context, family v1.IPFamily) (nftables.Kernel, error) { return nftables.Open(family) },
	}
}

// cleanupLeftovers removes, before anything is programmed, the rules of the proxy
// modes this one replaces (leftoverModes). As kube-proxy's, it is best effort: an
// error is logged and the daemon starts anyway, because the mode's own rules work
// beside most leftovers and refusing to start would leave the node without any.
func (c *Controller) cleanupLeftovers(ctx context.Context) {
	if c.leftovers == nil {
		return
	}
	logger := klog.FromContext(ctx)
	for _, mode := range leftoverModes(c.cfg.Mode) {
		var err error
		switch mode {
		case "iptables":
			err = c.leftovers.cleanIPTables(ctx, logger)
		case "ipvs":
			err = c.leftovers.cleanIPVS(ctx, logger, c.cfg.IPVS.ExcludeCIDRs)
		case "nftables":
			err = c.leftovers.cleanNFTables(ctx, logger)
		}
		if err != nil {
			logger.Error(err, "Could not remove the rules another proxy mode left; starting anyway, as kube-proxy does (run switchyard cleanup)", "leftoverMode", mode)
		}
	}
}

// cleanIPTables removes the KUBE- chains of iptables and IPVS modes, and the jumps to
// them, from both families and both backends. kube-proxy cleans the backend its
// `iptables` resolves to (its image's wrapper picks the one holding kube-proxy's
// rules); cleaning both removes the same leftovers and those of a node that changed
// backends too, and touches nothing that is not a proxy's (iptables.PlanCleanup).
func (k *leftoverKernel) cleanIPTables(ctx context.Context, logger klog.Logger) error {
	var errs []error
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		for _, family := range leftoverFamilies {
			ipt, err := k.iptables(ctx, family, backend)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", family, backend, err))
				continue
			}
			if ipt == nil {
				continue
			}
			plan, err := iptables.Cleanup(ctx, ipt)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", family, backend, err))
				continue
			}
			if len(plan.Payload) > 0 {
				logger.Info("Removed iptables rules left by kube-proxy or Switchyard in iptables or IPVS mode",
					"family", family, "backend", backend, "chains", len(plan.Chains), "jumps", plan.HookRules)
			}
		}
	}
	return errors.Join(errs...)
}

// cleanIPVS removes IPVS mode's virtual servers on kube-ipvs0's addresses (and its
// node ports), the kube-ipvs0 interface and the KUBE- ipsets, in both families.
// kube-proxy flushes every virtual server; Switchyard leaves other programs' (and
// those in --ipvs-exclude-cidrs) alone, as `switchyard cleanup` does.
func (k *leftoverKernel) cleanIPVS(ctx context.Context, logger klog.Logger, exclude []netip.Prefix) error {
	var errs []error
	for _, family := range leftoverFamilies {
		kernel, err := k.ipvs(ctx, family)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", family, err))
			continue
		}
		if kernel == nil {
			logger.V(2).Info("IPVS is not available in this kernel; no IPVS leftovers to remove", "family", family)
			return errors.Join(errs...)
		}
		if closer, ok := kernel.IPVS.(interface{ Close() }); ok {
			defer closer.Close() // the real handle's netlink socket
		}
		before, _ := kernel.IPVS.VirtualServers()
		p, err := ipvs.NewProxier(&ipvs.Config{FamilyConfig: node.FamilyConfig{Family: family}, ExcludeCIDRs: exclude}, *kernel, 0, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", family, err))
			continue
		}
		if err := p.Cleanup(ctx); err != nil {
			errs = append(errs, fmt.Errorf("IPVS %s: %w", family, err))
			continue
		}
		after, _ := kernel.IPVS.VirtualServers()
		if removed := len(before) - len(after); removed > 0 {
			logger.Info("Removed IPVS virtual servers left by kube-proxy or Switchyard in IPVS mode", "family", family, "virtualServers", removed)
		}
	}
	return errors.Join(errs...)
}

// cleanNFTables deletes the kube-proxy table of both families, which kube-proxy's and
// Switchyard's nftables modes program; other tables stay. Without nft there is
// nothing to do, as in kube-proxy.
func (k *leftoverKernel) cleanNFTables(ctx context.Context, logger klog.Logger) error {
	var errs []error
	for _, family := range leftoverFamilies {
		nft, err := k.nftables(ctx, family)
		if err != nil {
			logger.V(2).Info("nftables is not available; no nftables leftovers to remove", "family", family, "reason", err.Error())
			continue
		}
		chains, err := nft.List(ctx, "chain")
		if nftables.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("nftables %s: %w", family, err))
			continue
		}
		if err := nftables.Cleanup(ctx, nft); err != nil {
			errs = append(errs, fmt.Errorf("nftables %s: %w", family, err))
			continue
		}
		logger.Info("Deleted the kube-proxy nftables table left by nftables mode", "family", nftables.FamilyOf(family), "chains", len(chains))
	}
	return errors.Join(errs...)
}
