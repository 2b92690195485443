package nftables

import (
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// RenderPartial adds to tx the transaction that turns the table programmed for prev
// into the one for next, touching only the service ports in changed, which must hold
// every service port that differs between them (next.SortedChangedSince(prev)). applied
// is the element mirror of prev; it is not modified (the Proxier commits the plan once
// the kernel took it).
//
// For each changed service port, a chain is rewritten only if its rules changed, a
// chain no longer needed is flushed (and deleted later), an affinity set is added,
// deleted, or recreated when its timeout changed (with every chain of the port
// rewritten, since they name it), and elements are added or deleted one by one. So a
// one-endpoint change writes that service's policy chain and, at most, its
// hairpin-connections element: kube-proxy's partial sync, without its listing of
// every chain and set.
func RenderPartial(tx *knftables.Transaction, prev, next *endpoints.Snapshot, changed []endpoints.ServicePortName, cfg *Config, applied *Elements) *Plan {
	plan := &Plan{Tx: tx, delta: elementDelta{}}
	for _, name := range changed {
		var before, after *serviceObjects
		if port := prev.Services[name]; port != nil {
			before = renderService(port, prev.Endpoints[name], cfg)
		}
		if port := next.Services[name]; port != nil {
			after = renderService(port, next.Endpoints[name], cfg)
		}
		if before == nil && after == nil {
			continue
		}
		plan.Stats.Services++
		writeServiceDiff(tx, plan, before, after)
		diffElements(plan.delta, applied, name, before, after)
	}
	writeElementDelta(tx, plan, applied)
	return plan
}

// writeServiceDiff writes one service port's chain and set changes. Either side may
// be nil.
func writeServiceDiff(tx *knftables.Transaction, plan *Plan, before, after *serviceObjects) {
	if before == nil {
		before = &serviceObjects{}
	}
	if after == nil {
		after = &serviceObjects{}
	}
	oldChains := make(map[string]*chainSpec, len(before.chains))
	for i := range before.chains {
		oldChains[before.chains[i].name] = &before.chains[i]
	}
	oldSets := make(map[string]affinitySet, len(before.sets))
	for _, s := range before.sets {
		oldSets[s.name] = s
	}
	rewrite := map[string]bool{}
	recreated := map[string]bool{}
	for _, s := range after.sets {
		old, ok := oldSets[s.name]
		switch {
		case !ok:
			rewrite[s.name] = true
		case old != s:
			rewrite[s.name], recreated[s.name] = true, true
		}
	}
	for i := range after.chains {
		c := &after.chains[i]
		if old, ok := oldChains[c.name]; !ok || !old.equal(c) || len(recreated) > 0 {
			rewrite[c.name] = true
		}
	}
	newChains := make(map[string]bool, len(after.chains))
	for _, c := range after.chains {
		newChains[c.name] = true
	}
	// Chains first: the flushes free the sets that are deleted next.
	createChains(tx, plan, after, rewrite)
	for _, c := range before.chains {
		if !newChains[c.name] {
			tx.Flush(&knftables.Chain{Name: c.name})
			plan.StaleChains = append(plan.StaleChains, c.name)
			plan.Stats.StaleChains++
		}
	}
	newSets := make(map[string]bool, len(after.sets))
	for _, s := range after.sets {
		newSets[s.name] = true
	}
	for _, s := range before.sets {
		if !newSets[s.name] || recreated[s.name] {
			tx.Delete(&knftables.Set{Name: s.name})
			plan.Stats.DeletedSets++
		}
	}
	writeSetsAndRules(tx, plan, after, rewrite)
}

// diffElements records in delta the new owners of every element one service port
// wanted before or wants after.
func diffElements(delta elementDelta, applied *Elements, name endpoints.ServicePortName, before, after *serviceObjects) {
	current := func(k elementKey) owners {
		if o, ok := delta[k]; ok {
			return o
		}
		return applied.m[k]
	}
	if before != nil {
		for _, el := range before.elements {
			k := elementKey{el.container, el.key}
			delta[k] = current(k).without(name)
		}
	}
	if after != nil {
		for _, el := range after.elements {
			k := elementKey{el.container, el.key}
			delta[k] = current(k).with(owned{port: name, value: el.value, comment: el.comment})
		}
	}
}

// writeElementDelta writes the element operations of a partial render: an element
// whose effective value did not change is not written.
func writeElementDelta(tx *knftables.Transaction, plan *Plan, applied *Elements) {
	for _, k := range sortedKeys(plan.delta) {
		was, had := applied.m[k].effective()
		now, has := plan.delta[k].effective()
		switch {
		case had && !has:
			tx.Delete(knftElement(k.container, k.key, "", ""))
			plan.Stats.ElementsDeleted++
		case !had && has:
			tx.Add(knftElement(k.container, k.key, now.value, now.comment))
			plan.Stats.ElementsAdded++
		case had && has && was.value != now.value:
			tx.Delete(knftElement(k.container, k.key, "", ""))
			tx.Add(knftElement(k.container, k.key, now.value, now.comment))
			plan.Stats.ElementsDeleted++
			plan.Stats.ElementsAdded++
		}
	}
}
