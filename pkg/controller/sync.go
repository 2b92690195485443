package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// sync is the runner's function, the same for every mode: one snapshot, then each
// Provider syncs its family from it.
func (c *Controller) sync(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	providers, facts := c.currentProviders()
	if len(providers) == 0 {
		return errNoProxiers
	}

	start := time.Now()
	snap := c.tracker.Snapshot()
	c.setPending()
	var errs []error
	for _, p := range providers {
		res, err := p.Sync(ctx, snap)
		c.recordSync(ctx, p.Family(), res, err)
		c.recordForDump(p.Family(), snap.Generation, res, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Family(), err))
			continue
		}
		c.recordSynced(ctx, p.Family(), snap, facts.Name)
	}
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			// Shutting down: the sync was cut short (a killed iptables-restore or ipset
			// restore changes nothing), and the next start syncs in full anyway.
			logger.Info("Sync interrupted by shutdown", "err", err)
			return err
		}
		// The changes in snap are not lost: a failed Provider syncs in full next time,
		// from a newer snapshot, which includes them. That full sync is pending work
		// even when no Service changed (a periodic or canary full sync failed), so
		// /healthz turns red if it stays undone past the timeout; kube-proxy would
		// stay green (kubernetes#57428: a held xtables lock).
		c.health.QueuedUpdate()
		logger.Error(err, "Sync failed; retrying with a full sync")
		return err
	}

	c.afterSync(ctx, start, snap, facts)
	return nil
}

// recordSync logs and counts one Provider's sync, successful or not.
func (c *Controller) recordSync(ctx context.Context, family v1.IPFamily, res proxy.Result, err error) {
	logger := klog.FromContext(ctx)
	fam := string(family)
	if c.onSynced != nil {
		c.onSynced(family, res, err)
	}
	c.metrics.ObserveSync(fam, res.Full, res.Duration, err)
	for _, serr := range res.ServiceErrors {
		logger.Error(serr, "Service port not fully programmed", "family", family)
	}
	// -v=9: every payload as written to the kernel, one log entry per write.
	if payloadLogger := logger.V(9); payloadLogger.Enabled() {
		for _, p := range res.Payloads {
			if p.Data == nil {
				payloadLogger.Info("Payload streamed, not kept", "family", family, "kind", p.Kind, "bytes", p.Size())
				continue
			}
			payloadLogger.Info("Payload", "family", family, "kind", p.Kind, "payload", string(p.Data))
		}
	}
	if err != nil {
		if res.RestoreFailed {
			c.metrics.RestoreFailures.WithLabelValues(fam).Inc()
			if !res.Full {
				c.metrics.PartialRestoreFailures.WithLabelValues(fam).Inc()
			}
		}
		return
	}
	c.metrics.SetRules(fam, res.RulesWritten, res.RulesTotal)
	for _, p := range res.Payloads {
		if p.Kind == proxy.PayloadIPTablesRestore {
			c.metrics.RestoreBytes.WithLabelValues(res.Kind()).Observe(float64(p.Size()))
		}
	}
	logger.V(2).Info("Synced", append([]any{"family", family, "sync", res.Kind(), "reason", res.Reason, "elapsed", res.Duration}, res.Details...)...)
}

// recordSynced records what follows one family's successful sync: its last-sync time,
// network programming latency and services without local endpoints, as kube-proxy's
// per-family proxiers do.
func (c *Controller) recordSynced(ctx context.Context, family v1.IPFamily, snap *endpoints.Snapshot, nodeName string) {
	logger := klog.FromContext(ctx)
	fam := string(family)
	now := time.Now()
	// Fractional seconds, as kube-proxy's SetToCurrentTime: two syncs within a second differ.
	c.metrics.LastSyncTimestamp.WithLabelValues(fam).Set(float64(now.UnixNano()) / 1e9)
	for svc, trigger := range snap.TriggerTimes {
		latency := now.Sub(trigger)
		c.metrics.NetworkProgramming.WithLabelValues(fam).Observe(latency.Seconds())
		logger.V(4).Info("Network programming", "family", family, "service", klog.KRef(svc.Namespace, svc.Name), "elapsed", latency)
	}
	counts := c.noLocal[family]
	if counts == nil {
		counts = &noLocalCounts{}
		c.noLocal[family] = counts
	}
	internal, external := counts.update(snap, family, nodeName)
	c.metrics.NoLocalEndpoints.WithLabelValues("internal", fam).Set(float64(internal))
	c.metrics.NoLocalEndpoints.WithLabelValues("external", fam).Set(float64(external))
}

// setPending sets kube-proxy's *_changes_pending gauges from the tracker.
func (c *Controller) setPending() {
	services, slices := c.tracker.PendingChanges()
	c.metrics.ServiceChangesPending.Set(float64(services))
	c.metrics.EndpointChangesPending.Set(float64(slices))
}

// afterSync does what follows a sync that every Provider applied: health, stale UDP
// flows (in the background, see conntrackCleaner), health-check ports.
func (c *Controller) afterSync(ctx context.Context, start time.Time, snap *endpoints.Snapshot, facts node.Facts) {
	logger := klog.FromContext(ctx)
	c.health.Updated(start)
	c.requestCleanup(ctx, snap, facts)
	ports, ready := healthChecks(snap, facts.Name)
	if err := c.services.Sync(ports, ready); err != nil {
		logger.Error(err, "Some health-check node ports could not be served")
	}
}

// healthChecks returns the health-check node port of every externalTrafficPolicy
// Local LoadBalancer service and its count of ready endpoints on this node. As in
// kube-proxy, the count is of distinct endpoint IPs over all the service's ports, so
// a pod serving two ports counts once; on a dual-stack node it is the larger of the
// two families' counts (kube-proxy's proxiers each report their own family's).
func healthChecks(snap *endpoints.Snapshot, nodeName string) (map[types.NamespacedName]int32, map[types.NamespacedName]int) {
	ports := map[types.NamespacedName]int32{}
	localIPs := map[types.NamespacedName]map[netip.Addr]struct{}{}
	for name, port := range snap.Services {
		if port.HealthCheckNodePort == 0 {
			continue
		}
		ports[name.NamespacedName] = port.HealthCheckNodePort
		ips := localIPs[name.NamespacedName]
		if ips == nil {
			ips = map[netip.Addr]struct{}{}
			localIPs[name.NamespacedName] = ips
		}
		for _, ep := range snap.Endpoints[name] {
			if ep.NodeName == nodeName && ep.Ready {
				ips[ep.IP] = struct{}{}
			}
		}
	}
	ready := map[types.NamespacedName]int{}
	for svc, ips := range localIPs {
		perFamily := map[v1.IPFamily]int{}
		for ip := range ips {
			perFamily[endpoints.FamilyOf(ip)]++
		}
		ready[svc] = max(perFamily[v1.IPv4Protocol], perFamily[v1.IPv6Protocol])
	}
	return ports, ready
}

// noLocal is one service port's contribution to sync_proxy_rules_no_local_endpoints_total.
type noLocal struct{ internal, external bool }

// noLocalCounts keeps one family's no-local-endpoints counts up to date from the
// service ports changed since the snapshot it last saw, so a partial sync costs
// O(changed) here too.
type noLocalCounts struct {
	base               *endpoints.Snapshot
	nodeName           string
	ports              map[endpoints.ServicePortName]noLocal
	internal, external int
}

// update moves the counts to snap and returns them.
func (s *noLocalCounts) update(snap *endpoints.Snapshot, family v1.IPFamily, nodeName string) (internal, external int) {
	changed, ok := snap.ChangedSince(s.base)
	if !ok || nodeName != s.nodeName {
		*s = noLocalCounts{nodeName: nodeName, ports: map[endpoints.ServicePortName]noLocal{}}
		changed = make(map[endpoints.ServicePortName]struct{}, len(snap.Services))
		for name := range snap.Services {
			changed[name] = struct{}{}
		}
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	for name := range changed {
		old, now := s.ports[name], classifyNoLocal(snap.Services[name], snap.Endpoints[name], family, nodeName)
		s.internal += b2i(now.internal) - b2i(old.internal)
		s.external += b2i(now.external) - b2i(old.external)
		if now == (noLocal{}) {
			delete(s.ports, name)
		} else {
			s.ports[name] = now
		}
	}
	s.base = snap
	return s.internal, s.external
}

// classifyNoLocal says whether one service port counts in kube-proxy's
// sync_proxy_rules_no_local_endpoints_total for family: a Local traffic policy, usable
// endpoints in the cluster (ready, or serving while terminating), none on this node.
func classifyNoLocal(port *endpoints.ServicePort, eps []*endpoints.Endpoint, family v1.IPFamily, nodeName string) noLocal {
	if port == nil {
		return noLocal{}
	}
	port = port.OfFamily(family) // as each renderer sees it
	if !port.UsesLocalEndpoints() || !port.ClusterIP(family).IsValid() {
		return noLocal{}
	}
	anyUsable := false
	for _, ep := range eps {
		if endpoints.FamilyOf(ep.IP) != family || !(ep.Ready || (ep.Serving && ep.Terminating)) {
			continue
		}
		if ep.NodeName == nodeName {
			return noLocal{} // Select would give it a local endpoint
		}
		anyUsable = true
	}
	if !anyUsable {
		return noLocal{}
	}
	return noLocal{internal: port.InternalPolicyLocal, external: port.ExternalPolicyLocal && port.ExternallyAccessible()}
}

// noLocalEndpoints counts from scratch, as the first update does.
func noLocalEndpoints(snap *endpoints.Snapshot, family v1.IPFamily, nodeName string) (internal, external int) {
	var s noLocalCounts
	return s.update(snap, family, nodeName)
}

// cleanConntrack deletes UDP conntrack entries that still point at endpoints which are
// gone, now that the rules no longer send new flows there. Only the service ports that
// changed since the last snapshot every Provider applied and cleaned are checked,
// whatever other snapshots were taken in between; a sync that changed no UDP service
// does not read the table (kubernetes#129982: reading it all after every sync blocked
// syncs on busy nodes). A cleanup that failed is retried from the same base at the
// next sync, so no stale entry is forgotten. Only the conntrackCleaner's worker calls
// it, one at a time.
func (c *Controller) cleanConntrack(ctx context.Context, snap *endpoints.Snapshot, facts node.Facts) {
	logger := klog.FromContext(ctx)
	filter := conntrack.NewStaleUDP(c.lastSynced, snap, facts.IPs)
	failed := false
	for _, family := range facts.Families() {
		fam := string(family)
		start := time.Now()
		var res conntrack.Result
		var err error
		if !filter.Empty() {
			res, err = c.conntrack.DeleteStale(ctx, family, filter)
		}
		elapsed := time.Since(start)
		c.metrics.ConntrackCleanup.WithLabelValues(fam).Observe(elapsed.Seconds())
		c.metrics.ConntrackDeleted.WithLabelValues(fam).Add(float64(res.Deleted))
		c.metrics.ConntrackRead.WithLabelValues(fam).Add(float64(res.Read))
		if err != nil {
			failed = true
			logger.Error(err, "Deleting stale UDP conntrack entries", "family", family, "deleted", res.Deleted, "elapsed", elapsed)
			continue
		}
		if res.Dumps > 0 {
			logger.V(2).Info("Deleted stale UDP conntrack entries", "family", family, "deleted", res.Deleted, "read", res.Read, "dumps", res.Dumps, "elapsed", elapsed)
		}
	}
	if !failed {
		c.lastSynced = snap
	}
}
