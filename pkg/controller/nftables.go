package controller

import (
	"context"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
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
// Localhost node ports are served in iptables mode only (datapath.go); in nftables mode
// they are rejected and counted with kube-proxy's alpha gate, as kube-proxy does, and
// otherwise left alone (docs/nftables.md).
func nftablesConfigs(cfg *Config, facts node.Facts) []*nftables.Config {
	var out []*nftables.Config
	for _, fc := range familyConfigs(cfg, facts) {
		out = append(out, &nftables.Config{
			FamilyConfig: fc,
			LocalhostNodePortRejects: nftables.LocalhostNodePortRejects(cfg.NFTablesLocalhostNodePorts,
				node.NodePortsNameLoopback(cfg.NodePortAddresses, fc.Family)),
		})
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
	cidrs := c.currentServiceCIDRs()
	for _, cfg := range nftablesConfigs(&c.cfg, facts) {
		for _, p := range cidrs {
			if endpoints.FamilyOf(p.Addr()) == cfg.Family {
				cfg.ServiceCIDRs = append(cfg.ServiceCIDRs, p)
			}
		}
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

// reasonServiceCIDRs is the full-sync reason after the ServiceCIDR objects changed.
const reasonServiceCIDRs = "the service CIDRs changed"

// serviceCIDRSetter is implemented by Providers that drop traffic to unallocated
// addresses of the service ranges (nftables mode).
type serviceCIDRSetter interface {
	SetServiceCIDRs(cidrs []netip.Prefix) bool
}

// watchServiceCIDRs follows the ServiceCIDR objects in nftables mode, as kube-proxy
// does, for its "Drop traffic to unallocated ClusterIPs" rule. The informer is not
// waited for: a cluster that does not serve ServiceCIDRs (or RBAC that does not grant
// list and watch on them) leaves the rule out instead of stopping the daemon.
func (c *Controller) watchServiceCIDRs(ctx context.Context, factory informers.SharedInformerFactory) error {
	if c.cfg.Mode != "nftables" {
		return nil
	}
	informer := factory.Networking().V1().ServiceCIDRs().Informer()
	update := func() {
		var cidrs []netip.Prefix
		for _, obj := range informer.GetStore().List() {
			sc, ok := obj.(*networkingv1.ServiceCIDR)
			if !ok {
				continue
			}
			for _, text := range sc.Spec.CIDRs {
				if p, err := netip.ParsePrefix(text); err == nil {
					cidrs = append(cidrs, p.Masked())
				}
			}
		}
		c.setServiceCIDRs(ctx, cidrs)
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { update() },
		UpdateFunc: func(any, any) { update() },
		DeleteFunc: func(any) { update() },
	})
	if err != nil {
		return fmt.Errorf("registering the ServiceCIDR handler: %w", err)
	}
	return nil
}

// setServiceCIDRs records the service ranges for Providers built later and hands them
// to the current ones; a change makes the next sync full and requests it.
func (c *Controller) setServiceCIDRs(ctx context.Context, cidrs []netip.Prefix) {
	c.mu.Lock()
	c.serviceCIDRs = cidrs
	providers := c.providers
	c.mu.Unlock()
	changed := false
	for _, p := range providers {
		if s, ok := p.(serviceCIDRSetter); ok && s.SetServiceCIDRs(cidrs) {
			p.RequestFullSync(reasonServiceCIDRs)
			changed = true
		}
	}
	if changed {
		klog.FromContext(ctx).V(2).Info("Service CIDRs changed", "cidrs", cidrs)
		c.runner.Request()
	}
}

// currentServiceCIDRs returns the service ranges last seen.
func (c *Controller) currentServiceCIDRs() []netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serviceCIDRs
}
