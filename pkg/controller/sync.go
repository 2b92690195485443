package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// sync is the runner's function: one snapshot, then render and apply per family.
func (c *Controller) sync(ctx context.Context) error {
	if c.isIPVS() {
		return c.syncIPVS(ctx)
	}
	logger := klog.FromContext(ctx)
	c.mu.Lock()
	proxiers := c.proxiers
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
		elapsed := res.RenderTime + res.ApplyTime
		c.metrics.ObserveSync(res.Full, elapsed, err)
		if err != nil {
			c.metrics.RestoreFailures.Inc()
			errs = append(errs, fmt.Errorf("%s: %w", p.Config().Family, err))
			continue
		}
		kind := "partial"
		if res.Full {
			kind = "full"
			c.metrics.RulesTotal.WithLabelValues("filter").Set(float64(res.Stats.FilterRules))
			c.metrics.RulesTotal.WithLabelValues("nat").Set(float64(res.Stats.NATRules))
		}
		c.metrics.RulesLast.WithLabelValues("all").Set(float64(res.Stats.Rules))
		c.metrics.RestoreBytes.WithLabelValues(kind).Observe(float64(res.PayloadBytes))
		logger.V(2).Info("Synced", "family", p.Config().Family, "sync", kind, "reason", res.Reason,
			"servicePorts", res.Stats.Services, "chains", res.Stats.Chains, "rules", res.Stats.Rules,
			"deletedChains", res.Stats.DeletedChains, "bytes", res.PayloadBytes,
			"render", res.RenderTime, "apply", res.ApplyTime)
	}
	if err := errors.Join(errs...); err != nil {
		// The changes in snap are not lost: a failed proxier renders its next sync in
		// full from a newer snapshot, which includes them.
		logger.Error(err, "Sync failed; retrying with a full sync")
		return err
	}

	c.afterSync(ctx, start, snap, nodeName)
	return nil
}

// afterSync does what follows a sync that every proxier applied, in either mode:
// health, metrics, network programming latency, stale UDP flows, health-check ports.
func (c *Controller) afterSync(ctx context.Context, start time.Time, snap *endpoints.Snapshot, nodeName string) {
	logger := klog.FromContext(ctx)
	now := time.Now()
	c.health.Updated(start)
	c.metrics.LastSyncTimestamp.Set(float64(now.Unix()))
	for svc, trigger := range snap.TriggerTimes {
		latency := now.Sub(trigger)
		c.metrics.NetworkProgramming.Observe(latency.Seconds())
		logger.V(4).Info("Network programming", "service", klog.KRef(svc.Namespace, svc.Name), "elapsed", latency)
	}
	c.cleanConntrack(ctx, snap)
	ports, ready := healthChecks(snap, nodeName)
	if err := c.services.Sync(ports, ready); err != nil {
		logger.Error(err, "Some health-check node ports could not be served")
	}
}

// healthChecks returns the health-check node port of every externalTrafficPolicy
// Local LoadBalancer service and its count of ready endpoints on this node.
func healthChecks(snap *endpoints.Snapshot, nodeName string) (map[types.NamespacedName]int32, map[types.NamespacedName]int) {
	ports := map[types.NamespacedName]int32{}
	ready := map[types.NamespacedName]int{}
	for name, port := range snap.Services {
		if port.HealthCheckNodePort == 0 {
			continue
		}
		ports[name.NamespacedName] = port.HealthCheckNodePort
		ready[name.NamespacedName] += endpoints.LocalReadyCount(snap.Endpoints[name], nodeName)
	}
	return ports, ready
}

// watchCanary checks the canary chains every CanaryInterval. When one is gone, someone
// flushed the tables, and the next sync rewrites everything.
func (c *Controller) watchCanary(ctx context.Context) {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(c.cfg.CanaryInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		c.mu.Lock()
		proxiers := c.proxiers
		c.mu.Unlock()
		for _, p := range proxiers {
			ok, err := p.CanaryPresent(ctx)
			if err != nil {
				logger.Error(err, "Checking the canary chains")
				continue
			}
			if !ok {
				logger.Info("Canary chain missing: the tables were flushed; forcing a full sync", "family", p.Config().Family)
				p.RequestFullSync()
				c.runner.Request()
			}
		}
	}
}

// cleanConntrack deletes UDP conntrack entries that still point at endpoints which are
// gone, now that the rules no longer send new flows there.
func (c *Controller) cleanConntrack(ctx context.Context, snap *endpoints.Snapshot) {
	logger := klog.FromContext(ctx)
	prev := c.lastSynced
	if prev != nil && snap.Generation != prev.Generation+1 {
		prev = nil // changes since prev are not all in snap.Changed: check every UDP port
	}
	c.lastSynced = snap
	c.mu.Lock()
	facts := c.facts
	c.mu.Unlock()
	filter := conntrack.NewStaleUDP(prev, snap, facts.IPs)
	if filter.Empty() {
		return
	}
	for _, family := range facts.Families() {
		n, err := c.conntrack.DeleteFlows(ctx, family, filter.Match)
		if err != nil {
			logger.Error(err, "Deleting stale UDP conntrack entries", "family", family)
			continue
		}
		c.metrics.ConntrackEntriesDeleted.Add(float64(n))
		if n > 0 {
			logger.V(2).Info("Deleted stale UDP conntrack entries", "family", family, "count", n)
		}
	}
}
