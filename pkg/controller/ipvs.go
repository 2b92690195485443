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
	"github.com/switchyard-io/switchyard/pkg/node"
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

// ipvsMode is the controller's IPVS-mode state.
type ipvsMode struct {
	// openKernel opens the kernel interfaces of one family; tests replace it.
	openKernel func(ctx context.Context, family v1.IPFamily) (ipvs.Kernel, error)
	proxiers   []*ipvs.Proxier
}

// isIPVS reports whether the daemon runs in IPVS mode.
func (c *Controller) isIPVS() bool { return c.cfg.Mode == "ipvs" }

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
	return ipvs.Kernel{IPVS: handle, Links: ipvs.NewLinks(), IPSets: ipvs.ExecIPSets{}, IPTables: ipt, Sysctl: ipvs.ProcSysctl{}}, nil
}

// buildIPVSProxiers (re)creates one IPVS Proxier per family; each starts with a full
// sync, which adopts what the kernel already holds.
func (c *Controller) buildIPVSProxiers(ctx context.Context, facts node.Facts) error {
	open := c.ipvs.openKernel
	if open == nil {
		open = c.openIPVSKernel
	}
	var proxiers []*ipvs.Proxier
	for _, cfg := range ipvsConfigs(&c.cfg, facts) {
		k, err := open(ctx, cfg.Family)
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.Family, err)
		}
		p, err := ipvs.NewProxier(cfg, k, c.cfg.FullSyncPeriod, nil)
		if err != nil {
			return err
		}
		proxiers = append(proxiers, p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// An empty, non-nil iptables list marks the node as known to the node handler
	// while the canary watch has nothing to check.
	c.facts, c.proxiers, c.ipvs.proxiers = facts, []*iptables.Proxier{}, proxiers
	return nil
}

// syncIPVS is the runner's function in IPVS mode.
func (c *Controller) syncIPVS(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	c.mu.Lock()
	proxiers := c.ipvs.proxiers
	nodeName := c.facts.Name
	c.mu.Unlock()
	if len(proxiers) == 0 {
		return errNoProxiers
	}
	start := time.Now()
	snap := c.tracker.Snapshot()
	var errs []error
	for _, p := range proxiers {
		res, err := p.Sync(ctx, snap)
		c.metrics.ObserveSync(res.Full, res.Duration, err)
		for _, serr := range res.ServiceErrors {
			logger.Error(serr, "Service port not fully programmed", "family", p.Config().Family)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Config().Family, err))
			continue
		}
		kind := "partial"
		if res.Full {
			kind = "full"
		}
		logger.V(2).Info("Synced IPVS", "family", p.Config().Family, "sync", kind, "reason", res.Reason,
			"servicePorts", res.Stats.Services, "virtualServers", res.Stats.VirtualServers,
			"added", res.Stats.Added, "updated", res.Stats.Updated, "deleted", res.Stats.Deleted,
			"realAdded", res.Stats.RealAdded, "realUpdated", res.Stats.RealUpdated, "realDeleted", res.Stats.RealDeleted,
			"addresses", res.Stats.AddressesAdded-res.Stats.AddressesDeleted, "setChanges", res.Stats.SetChanges,
			"elapsed", res.Duration)
	}
	if err := errors.Join(errs...); err != nil {
		logger.Error(err, "IPVS sync failed; retrying with a full sync")
		return err
	}
	c.afterSync(ctx, start, snap, nodeName)
	return nil
}

// watchTerminating finishes graceful termination in IPVS mode: every interval it
// deletes the drained real servers whose connections have ended (or whose grace period
// is over). It returns at once in other modes.
func (c *Controller) watchTerminating(ctx context.Context) {
	if !c.isIPVS() {
		return
	}
	logger := klog.FromContext(ctx)
	interval := c.cfg.IPVS.TerminationCheckInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		c.mu.Lock()
		proxiers := c.ipvs.proxiers
		c.mu.Unlock()
		for _, p := range proxiers {
			res, err := p.CheckTerminating(ctx)
			if err != nil {
				logger.Error(err, "Checking draining real servers", "family", p.Config().Family)
			}
			for _, d := range res.Deleted {
				logger.V(2).Info("Deleted drained real server", "realServer", d)
			}
			if res.Remaining > 0 {
				logger.V(4).Info("Real servers still draining", "family", p.Config().Family, "count", res.Remaining)
			}
		}
	}
}
