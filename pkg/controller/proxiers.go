package controller

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// familyConfigs returns the per-family facts and flags, for every family the node has
// addresses in.
func familyConfigs(cfg *Config, facts node.Facts) []node.FamilyConfig {
	return node.FamilyConfigs(facts, facts.Families(), cfg.familyOptions())
}

// iptablesConfigs returns one renderer Config per IP family the node has addresses in.
func iptablesConfigs(cfg *Config, facts node.Facts) []*iptables.Config {
	var configs []*iptables.Config
	for _, fc := range familyConfigs(cfg, facts) {
		configs = append(configs, &iptables.Config{
			FamilyConfig:       fc,
			LocalhostNodePorts: cfg.localhostNodePorts() && fc.Family == v1.IPv4Protocol,
		})
	}
	return configs
}

// buildProxiers (re)creates one Proxier per family for the node's facts. New proxiers
// start with a full sync.
func (c *Controller) buildProxiers(ctx context.Context, facts node.Facts) error {
	if c.isIPVS() {
		return c.buildIPVSProxiers(ctx, facts)
	}
	var proxiers []*iptables.Proxier
	for _, cfg := range iptablesConfigs(&c.cfg, facts) {
		cfg.ConntrackTCPLiberal = c.nodeState.TCPBeLiberal
		cfg.NFAcct = c.nfacct
		ipt, err := c.newIPTables(ctx, cfg.Family)
		if err != nil {
			return err
		}
		p, err := iptables.NewProxier(cfg, ipt, c.cfg.FullSyncPeriod, nil)
		if err != nil {
			return err
		}
		proxiers = append(proxiers, p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.facts, c.proxiers = facts, proxiers
	return nil
}

// openIPTables opens the real iptables of one family, on the configured backend or the
// one the host already uses.
func (c *Controller) openIPTables(ctx context.Context, family v1.IPFamily) (xtables.Interface, error) {
	logger := klog.FromContext(ctx)
	backend, err := xtables.ParseBackend(c.cfg.IPTablesBackend)
	if err != nil {
		return nil, err
	}
	reason := "--iptables-backend"
	if backend == "" {
		report, err := xtables.DetectBackend(ctx)
		if err != nil {
			return nil, fmt.Errorf("choosing the iptables backend: %w", err)
		}
		backend, reason = report.Chosen, report.Reason
	}
	logger.Info("Using iptables backend", "family", family, "backend", backend, "reason", reason)
	c.metrics.Backend.WithLabelValues(string(backend), reason).Set(1)
	return xtables.NewExec(family, backend, c.cfg.IPTablesLockWait)
}
