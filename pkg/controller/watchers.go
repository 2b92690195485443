package controller

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// reasonCanary is the full-sync reason after a canary check failed.
const reasonCanary = "canary chain missing: the tables were flushed"

// watchCanary checks every Provider's kernel state every CanaryInterval. When a
// Provider's check fails, someone flushed the tables (a firewall reload), and its next
// sync rewrites everything.
func (c *Controller) watchCanary(ctx context.Context) {
	every(ctx, c.cfg.CanaryInterval, c.checkCanaries)
}

// every calls fn once per interval, the first time one interval from now, until ctx
// ends.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			fn(ctx)
		}
	}
}

// checkCanaries runs one canary check over every Provider.
func (c *Controller) checkCanaries(ctx context.Context) {
	logger := klog.FromContext(ctx)
	providers, _ := c.currentProviders()
	for _, p := range providers {
		ok, err := p.CheckKernel(ctx)
		if err != nil {
			logger.Error(err, "Checking the canary chains", "family", p.Family())
			continue
		}
		if !ok {
			logger.Info("Canary chain missing: the tables were flushed; forcing a full sync", "family", p.Family())
			p.RequestFullSync(reasonCanary)
			// The kernel is known to be wrong: pending work for /healthz, as a queued
			// change is, so a rebuild that cannot happen turns it red.
			c.health.QueuedUpdate()
			c.runner.Request()
		}
	}
}

// terminationCheckInterval is how often draining backends are checked by default.
const terminationCheckInterval = 10 * time.Second

// watchTerminating finishes graceful termination for the Providers that drain removed
// endpoints (proxy.TerminationChecker, IPVS mode): every interval it deletes the
// drained backends whose connections have ended (or whose grace period is over).
func (c *Controller) watchTerminating(ctx context.Context) {
	interval := c.cfg.IPVS.TerminationCheckInterval
	if interval <= 0 {
		interval = terminationCheckInterval
	}
	every(ctx, interval, c.checkTerminating)
}

// checkTerminating runs one termination check over every Provider that has one, and
// sets the gauge of backends still draining.
func (c *Controller) checkTerminating(ctx context.Context) {
	logger := klog.FromContext(ctx)
	providers, _ := c.currentProviders()
	remaining, checked := 0, false
	for _, p := range providers {
		checker, ok := p.(proxy.TerminationChecker)
		if !ok {
			continue
		}
		checked = true
		res, err := checker.CheckTerminating(ctx)
		if err != nil {
			logger.Error(err, "Checking draining backends", "family", p.Family())
		}
		for _, d := range res.Deleted {
			logger.V(2).Info("Deleted drained backend", "family", p.Family(), "realServer", d)
		}
		if res.Remaining > 0 {
			logger.V(4).Info("Backends still draining", "family", p.Family(), "count", res.Remaining)
		}
		remaining += res.Remaining
	}
	if checked {
		c.metrics.IPVSGracefulTerminations.Set(float64(remaining))
	}
}
