package controller

import (
	"context"

	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// watchPeriodic runs the periodic check of the Providers that have one
// (proxy.PeriodicChecker: iptables and nftables modes) every --full-sync-period, in
// place of their periodic full sync: the check reads the kernel without holding up
// syncs, so a change that arrives meanwhile is programmed as fast as any other
// (docs/reliability.md, "Full syncs"). Modes without one keep their periodic full
// sync, which their SyncState schedules.
func (c *Controller) watchPeriodic(ctx context.Context) {
	if c.cfg.FullSyncPeriod <= 0 {
		return
	}
	every(ctx, c.cfg.FullSyncPeriod, c.checkPeriodic)
}

// checkPeriodic runs one periodic check over every Provider that has one.
func (c *Controller) checkPeriodic(ctx context.Context) {
	logger := klog.FromContext(ctx)
	providers, _ := c.currentProviders()
	for _, p := range providers {
		checker, ok := p.(proxy.PeriodicChecker)
		if !ok {
			continue
		}
		res, err := checker.CheckPeriodic(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// What the check could not verify, a full sync rewrites: the guarantee
			// of the periodic full sync it replaces.
			logger.Error(err, "Periodic check of the kernel's rules failed; forcing a full sync", "family", p.Family())
			if res.FullSyncReason == "" {
				p.RequestFullSync(proxy.ReasonDrift + " failed")
			}
			c.health.QueuedUpdate()
			c.runner.Request()
			continue
		}
		logger.V(2).Info("Periodic check", append([]any{"family", p.Family(), "elapsed", res.Duration,
			"compared", res.Compared, "drifted", len(res.Drifted), "repaired", res.Repaired, "skipped", res.Skipped}, res.Details...)...)
		if len(res.Drifted) > 0 {
			logger.Info("Rules drifted from what was applied", "family", p.Family(), "chains", firstN(res.Drifted, 10),
				"count", len(res.Drifted), "repaired", res.Repaired)
		}
		if res.FullSyncReason != "" {
			logger.Info("Periodic check forces a full sync", "family", p.Family(), "reason", res.FullSyncReason)
			c.health.QueuedUpdate()
			c.runner.Request()
		}
	}
}

// firstN returns at most n of items, for a log line.
func firstN(items []string, n int) []string {
	return items[:min(n, len(items))]
}
