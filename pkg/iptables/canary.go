package iptables

import (
	"context"
	"errors"
)

// canaryTables are the tables that hold a KUBE-PROXY-CANARY chain, as in kube-proxy.
var canaryTables = []string{"mangle", "nat", "filter"}

// EnsureCanaries creates the empty canary chains. Nothing references them; they only
// exist so that their disappearance shows that someone flushed the tables. Every mode
// that writes iptables rules creates them in its full sync.
func EnsureCanaries(ctx context.Context, ipt Interface) error {
	var errs []error
	for _, table := range canaryTables {
		if err := ipt.EnsureChain(ctx, table, ChainCanary); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CanaryPresent reports whether the canary chains still exist. When one is gone,
// something flushed the tables (a firewall reload, a careless script) and every rule
// must be rewritten.
func CanaryPresent(ctx context.Context, ipt Interface) (bool, error) {
	for _, table := range canaryTables {
		ok, err := ipt.ChainExists(ctx, table, ChainCanary)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
