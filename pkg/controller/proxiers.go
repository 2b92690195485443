package controller

import (
	"context"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// newProviders builds one proxy.Provider per IP family the node has addresses in, for
// one proxy mode. Each Provider starts with a full sync.
type newProviders func(ctx context.Context, c *Controller, facts node.Facts) ([]proxy.Provider, error)

// modes is the one place proxy modes are registered: a mode is a Provider
// implementation plus its constructor here. The sync loop, the canary watcher and the
// health and metrics paths never ask which mode runs.
var modes = map[string]newProviders{
	"iptables": newIPTablesProviders,
	"ipvs":     newIPVSProviders,
	"nftables": newNFTablesProviders,
}

// ModeNames returns the registered proxy modes, sorted.
func ModeNames() []string {
	names := make([]string, 0, len(modes))
	for name := range modes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

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

// newIPTablesProviders is iptables mode's constructor.
func newIPTablesProviders(ctx context.Context, c *Controller, facts node.Facts) ([]proxy.Provider, error) {
	var providers []proxy.Provider
	for _, cfg := range iptablesConfigs(&c.cfg, facts) {
		cfg.ConntrackTCPLiberal = c.nodeState.TCPBeLiberal
		cfg.NFAcct = c.nfacct
		ipt, err := c.newIPTables(ctx, cfg.Family)
		if err != nil {
			return nil, err
		}
		p, err := iptables.NewProxier(cfg, ipt, c.cfg.FullSyncPeriod, c.now)
		if err != nil {
			return nil, err
		}
		providers = append(providers, p)
	}
	return providers, nil
}

// buildProviders (re)creates the Providers of the configured mode for the node's
// facts. New Providers start with a full sync.
func (c *Controller) buildProviders(ctx context.Context, facts node.Facts) error {
	build, ok := modes[c.cfg.Mode]
	if !ok { // Validate rejects this; a Controller built around it must not panic
		return fmt.Errorf("proxy mode %q: want one of %v", c.cfg.Mode, ModeNames())
	}
	providers, err := build(ctx, c, facts)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.facts, c.providers = facts, providers
	return nil
}

// currentProviders returns the Providers and the node's facts they were built for.
func (c *Controller) currentProviders() ([]proxy.Provider, node.Facts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.providers, c.facts
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
