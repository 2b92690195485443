package ruleset

import (
	"fmt"
	"slices"
)

// targetHooks are the built-in chains from which a target may be reached,
// from the kernel's xt_target .hooks masks: DNAT only before routing (or for
// local output), MASQUERADE only after it, REJECT only in the filter hooks.
var targetHooks = map[TargetKind][]string{
	TargetDNAT:       {"PREROUTING", "OUTPUT"},
	TargetMasquerade: {"POSTROUTING"},
	TargetReject:     {"INPUT", "FORWARD", "OUTPUT"},
}

// checkTable runs the checks the kernel makes when a table is committed: no
// loops in the jump graph, and every hook-restricted target reachable only
// from hooks that allow it.
func (r *Ruleset) checkTable(t *Table) error {
	const (
		unvisited = iota
		inProgress
		done
	)
	state := map[string]int{}
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case inProgress:
			return fmt.Errorf("%w: %v", errLoop, append(path, name))
		case done:
			return nil
		}
		state[name] = inProgress
		for _, rule := range t.chains[name].Rules {
			if next := rule.Target.Chain; next != "" {
				if err := visit(next, append(path, name)); err != nil {
					return err
				}
			}
		}
		state[name] = done
		return nil
	}
	names := t.chainNames()
	for _, name := range names {
		if err := visit(name, nil); err != nil {
			return fmt.Errorf("table %s: %w", t.Name, err)
		}
	}
	for _, hook := range BuiltinChains(t.Name) {
		for _, name := range t.reachable(hook) {
			for _, rule := range t.chains[name].Rules {
				allowed, restricted := targetHooks[rule.Target.Kind]
				if restricted && !slices.Contains(allowed, hook) {
					return fmt.Errorf("table %s: %s in chain %s is reachable from %s; it is only valid from %v",
						t.Name, rule.Target.Name, name, hook, allowed)
				}
			}
		}
	}
	return nil
}

// reachable returns the chains reachable from start, start included, in
// discovery order. The graph is loop-free when this is called.
func (t *Table) reachable(start string) []string {
	seen := map[string]bool{start: true}
	order := []string{start}
	for i := 0; i < len(order); i++ {
		for _, rule := range t.chains[order[i]].Rules {
			if next := rule.Target.Chain; next != "" && !seen[next] {
				seen[next] = true
				order = append(order, next)
			}
		}
	}
	return order
}
