package controller

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// nftablesMode holds the controller's nftables-mode hooks.
type nftablesMode struct {
	// openKernel opens one family's kube-proxy table; tests replace it with a
	// knftables.Fake.
	openKernel func(ctx context.Context, family v1.IPFamily) (nftables.Kernel, error)
}

// nftablesConfigs returns one nftables Config per IP family the node has addresses in.
// Localhost node ports are iptables-only (datapath.go): kube-proxy's nftables mode does
// not serve them either.
func nftablesConfigs(cfg *Config, facts node.Facts) []*nftables.Config {
	var out []*nftables.Config
	for _, fc := range familyConfigs(cfg, facts) {
		out = append(out, &nftables.Config{FamilyConfig: fc})
	}
	return out
}

// newNFTablesProviders is nftables mode's constructor: one Proxier per family, each
// starting with a full sync, which takes over the table kube-proxy's nftables mode
// left (same names) without a gap.
func newNFTablesProviders(ctx context.Context, c *Controller, facts node.Facts) ([]proxy.Provider, error) {
	open := c.nftables.openKernel
	if open == nil {
		open = func(_ context.Context, family v1.IPFamily) (nftables.Kernel, error) { return nftables.Open(family) }
	}
	var providers []proxy.Provider
	for _, cfg := range nftablesConfigs(&c.cfg, facts) {
		k, err := open(ctx, cfg.Family)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Family, err)
		}
		p, err := nftables.NewProxier(cfg, k, c.cfg.FullSyncPeriod, c.now)
		if err != nil {
			return nil, err
		}
		providers = append(providers, p)
	}
	return providers, nil
}
