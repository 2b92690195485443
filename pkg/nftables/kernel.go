package nftables

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/knftables"
)

// Kernel is the part of knftables.Interface the Proxier uses, for one family's
// kube-proxy table. The daemon's is Open's (writes through nft, reads over netlink);
// knftables.New's Interface and knftables.Fake (the strict fake unit tests use: it
// parses every operation, rejects references to missing objects and applies a
// transaction atomically) implement it too.
type Kernel interface {
	// NewTransaction returns an empty transaction for the table.
	NewTransaction() *knftables.Transaction
	// Run applies a transaction atomically.
	Run(ctx context.Context, tx *knftables.Transaction) error
	// List returns the names of the table's objects of one type ("chain", "set").
	List(ctx context.Context, objectType string) ([]string, error)
	// ListRules returns the rules of a chain.
	ListRules(ctx context.Context, chain string) ([]*knftables.Rule, error)
	// ListElements returns the elements of a set or map.
	ListElements(ctx context.Context, objectType, name string) ([]*knftables.Element, error)
}

var (
	_ Kernel = knftables.Interface(nil)
	_ Kernel = &knftables.Fake{}
)

// readKernel lists what a full render needs: the table's chains and sets, and the
// elements of the shared sets and maps. A table that does not exist yet is empty; a
// container that cannot be listed is left out, and the render flushes it.
func readKernel(ctx context.Context, nft Kernel) (KernelState, error) {
	var st KernelState
	var err error
	if st.Chains, err = nft.List(ctx, "chain"); err != nil && !IsNotFound(err) {
		return st, fmt.Errorf("listing chains: %w", err)
	}
	if st.Sets, err = nft.List(ctx, "set"); err != nil && !IsNotFound(err) {
		return st, fmt.Errorf("listing sets: %w", err)
	}
	st.Elements = map[string]map[string]string{}
	// The localhost reject map too: a full render with kube-proxy's alpha gate
	// syncs its elements, and one without deletes the map (a missing map lists empty).
	for _, c := range allContainers {
		m, err := listElements(ctx, nft, c)
		if err != nil && !IsNotFound(err) {
			continue // flushed and refilled by the render, as kube-proxy does
		}
		st.Elements[c] = m
	}
	// The rules' tags let the render leave alone the chains already as rendered; a
	// failed dump only costs the rewrite of every chain.
	if d, ok := nft.(RuleDumper); ok && len(st.Chains) > 0 {
		if rules, err := d.DumpRules(ctx); err == nil {
			st.RuleTags = make(map[string][]uint64, len(rules))
			for chain, rs := range rules {
				tags := make([]uint64, len(rs))
				for i, r := range rs {
					tags[i] = r.Tag
				}
				st.RuleTags[chain] = tags
			}
		}
	}
	return st, nil
}

// listElements returns a shared set's or map's elements as key → value, the parts
// joined with " . " ("" for a set's), as the mirror holds them.
func listElements(ctx context.Context, nft Kernel, container string) (map[string]string, error) {
	kind := "map"
	if isSetName(container) {
		kind = "set"
	}
	elems, err := nft.ListElements(ctx, kind, container)
	m := make(map[string]string, len(elems))
	for _, el := range elems {
		m[strings.Join(el.Key, " . ")] = strings.Join(el.Value, " . ")
	}
	return m, err
}

// tablePresent is the canary: the jump from nat-prerouting to services is written by
// full syncs only, so when it is gone the table was deleted (`nft flush ruleset`, a
// firewall reload) or flushed (`nft flush table`), and everything must be rewritten.
func tablePresent(ctx context.Context, nft Kernel) (bool, error) {
	rules, err := nft.ListRules(ctx, chainNATPrerouting)
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("listing %s: %w", chainNATPrerouting, err)
	}
	return len(rules) > 0, nil
}

// Cleanup deletes the kube-proxy table of one family, as `kube-proxy --cleanup` does;
// a table that does not exist is not an error.
func Cleanup(ctx context.Context, nft Kernel) error {
	tx := nft.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil && !IsNotFound(err) {
		return fmt.Errorf("deleting table %s: %w", TableName, err)
	}
	return nil
}

// EmptyKernel is the state of a node without a kube-proxy table, as the first full
// sync of a Proxier sees it (what dry-run renders for).
func EmptyKernel() KernelState {
	st := KernelState{Elements: map[string]map[string]string{}, RecreateBaseChains: true}
	for _, c := range allContainers {
		st.Elements[c] = map[string]string{}
	}
	return st
}
