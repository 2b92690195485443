package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	v1 "k8s.io/api/core/v1"
)

// IPVSConfig holds the settings of --proxy-mode ipvs, with kube-proxy's flag names.
type IPVSConfig struct {
	// Scheduler is the default scheduler (--ipvs-scheduler); services may override it
	// with the switchyard.io/ipvs-scheduler annotation.
	Scheduler string
	// StrictARP sets arp_ignore=1 and arp_announce=2 (--ipvs-strict-arp).
	StrictARP bool
	// TCPTimeout, TCPFinTimeout and UDPTimeout are the kernel's IPVS timeouts
	// (--ipvs-tcp-timeout, --ipvs-tcpfin-timeout, --ipvs-udp-timeout); zero leaves
	// the kernel's value.
	TCPTimeout, TCPFinTimeout, UDPTimeout time.Duration
	// ExcludeCIDRs are never cleaned up (--ipvs-exclude-cidrs).
	ExcludeCIDRs []netip.Prefix
	// TerminationCheckInterval is how often draining real servers are checked; zero
	// means every 10 seconds.
	TerminationCheckInterval time.Duration
}

func (c *IPVSConfig) validate() error {
	var errs []error
	if c.Scheduler != "" && !ipvs.ValidScheduler(c.Scheduler) {
		errs = append(errs, fmt.Errorf("--ipvs-scheduler %q: want one of %v", c.Scheduler, ipvs.Schedulers))
	}
	for name, d := range map[string]time.Duration{"--ipvs-tcp-timeout": c.TCPTimeout, "--ipvs-tcpfin-timeout": c.TCPFinTimeout, "--ipvs-udp-timeout": c.UDPTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s must not be negative", name, d))
		}
	}
	return errors.Join(errs...)
}

// ipvsMode holds the controller's IPVS-mode hooks.
type ipvsMode struct {
	// openKernel opens the kernel interfaces of one family; tests replace it.
	openKernel func(ctx context.Context, family v1.IPFamily) (ipvs.Kernel, error)
}

// ipvsConfigs returns one IPVS Config per IP family the node has addresses in.
func ipvsConfigs(cfg *Config, facts node.Facts) []*ipvs.Config {
	var out []*ipvs.Config
	for _, fc := range familyConfigs(cfg, facts) {
		out = append(out, &ipvs.Config{
			FamilyConfig: fc,
			Scheduler:    cfg.IPVS.Scheduler,
			StrictARP:    cfg.IPVS.StrictARP,
			ExcludeCIDRs: cfg.IPVS.ExcludeCIDRs,
			Timeouts:     ipvs.Timeouts{TCP: cfg.IPVS.TCPTimeout, TCPFin: cfg.IPVS.TCPFinTimeout, UDP: cfg.IPVS.UDPTimeout},
		})
	}
	return out
}

// openIPVSKernel opens the real kernel interfaces for one family.
func (c *Controller) openIPVSKernel(ctx context.Context, family v1.IPFamily) (ipvs.Kernel, error) {
	handle, err := ipvs.NewIPVS()
	if err != nil {
		return ipvs.Kernel{}, err
	}
	ipt, err := c.newIPTables(ctx, family)
	if err != nil {
		return ipvs.Kernel{}, err
	}
	return ipvs.Kernel{IPVS: handle, Links: ipvs.NewLinks(), IPSets: ipvs.NewNetlinkIPSets(), IPTables: ipt, Sysctl: ipvs.ProcSysctl{}}, nil
}

// newIPVSProviders is IPVS mode's constructor: one Proxier per family, each starting
// with a full sync, which adopts what the kernel already holds.
func newIPVSProviders(ctx context.Context, c *Controller, facts node.Facts) ([]proxy.Provider, error) {
	open := c.ipvs.openKernel
	if open == nil {
		open = c.openIPVSKernel
	}
	var providers []proxy.Provider
	for _, cfg := range ipvsConfigs(&c.cfg, facts) {
		k, err := open(ctx, cfg.Family)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Family, err)
		}
		p, err := ipvs.NewProxier(cfg, k, c.cfg.FullSyncPeriod, c.now)
		if err != nil {
			return nil, err
		}
		providers = append(providers, p)
	}
	return providers, nil
}
