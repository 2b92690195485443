package nftables

import (
	"slices"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Plan is the outcome of a render: a transaction and what applying it changes in the
// Proxier's memory.
type Plan struct {
	// Full is true for a full render.
	Full bool
	// Tx is the transaction; Tx.String() is the exact `nft -f` input. It has no
	// operations when nothing needs writing.
	Tx *knftables.Transaction
	// Stats counts what the transaction writes.
	Stats Stats
	// StaleChains are the service chains this transaction flushes because nothing
	// needs them any more; they are deleted by a later transaction, at least a
	// second after this one is applied.
	StaleChains []string
	// WrittenChains are the service chains this transaction (re)writes; a chain
	// that was waiting for deletion and is written again is needed again.
	WrittenChains []string

	// elements is the new mirror (full renders) and delta the change to it
	// (partial renders), committed when the transaction succeeded.
	elements *Elements
	delta    elementDelta
}

// Stats counts the work in a Plan, for logs.
type Stats struct {
	// Services is the number of service ports rendered.
	Services int
	// Chains is the number of service chains written (created or flushed and
	// refilled); Rules the rules in them.
	Chains, Rules int
	// StaleChains is the number of service chains flushed to be deleted later.
	StaleChains int
	// Sets is the number of affinity sets added; DeletedSets those deleted.
	Sets, DeletedSets int
	// ElementsAdded and ElementsDeleted count element operations (a changed verdict
	// is one deletion and one addition).
	ElementsAdded, ElementsDeleted int
}

// KernelState is what a full render needs to know about the table as it is.
type KernelState struct {
	// Chains and Sets are the names of the chains and sets the table holds (none
	// when the table does not exist).
	Chains, Sets []string
	// Elements are the elements of the shared sets and maps, container → key →
	// value (parts joined with " . ", "" for sets). A container missing from the
	// map could not be listed: it is flushed and refilled.
	Elements map[string]map[string]string
	// RecreateBaseChains deletes and recreates the base chains (the first full sync
	// of a Proxier, as kube-proxy does at start).
	RecreateBaseChains bool
}

// Render adds to tx (empty, from the Proxier's kernel or a knftables.Fake) the full
// transaction for snap: the fixed objects, every service's chains and affinity sets,
// the element changes that turn the kernel's elements into the wanted ones, and the
// flush of every service chain no service needs (deleted later), which also takes over
// what a kube-proxy that ran before left behind. Every chain is flushed and rewritten in
// the one transaction, so traffic sees the old rules or the new, never none.
func Render(tx *knftables.Transaction, snap *endpoints.Snapshot, cfg *Config, kernel KernelState) *Plan {
	plan := &Plan{Full: true, Tx: tx, elements: NewElements()}
	staleRejects, kernel := staleLocalhostRejects(cfg, kernel)
	writeSetupDeleting(tx, cfg, kernel.RecreateBaseChains, staleRejects)
	plan.Stats.ElementsDeleted += len(staleRejects)
	for _, c := range cfg.containers() {
		if _, ok := kernel.Elements[c]; !ok {
			flushContainer(tx, c)
		}
	}
	active := map[string]bool{}
	activeSets := map[string]bool{}
	for _, name := range snap.SortedServices() {
		objs := renderService(snap.Services[name], snap.Endpoints[name], cfg)
		if objs == nil {
			continue
		}
		plan.Stats.Services++
		writeObjects(tx, plan, objs, nil)
		for _, c := range objs.chains {
			active[c.name] = true
		}
		for _, s := range objs.sets {
			activeSets[s.name] = true
		}
		for _, el := range objs.elements {
			k := elementKey{el.container, el.key}
			plan.elements.m[k] = plan.elements.m[k].with(owned{port: name, value: el.value, comment: el.comment})
		}
	}
	for _, c := range sortedNames(kernel.Chains) {
		if IsServiceChain(c) && !active[c] {
			tx.Flush(&knftables.Chain{Name: c})
			plan.StaleChains = append(plan.StaleChains, c)
		}
	}
	plan.Stats.StaleChains = len(plan.StaleChains)
	for _, s := range sortedNames(kernel.Sets) {
		if isAffinitySet(s) && !activeSets[s] {
			tx.Delete(&knftables.Set{Name: s})
			plan.Stats.DeletedSets++
		}
	}
	writeElementSync(tx, plan, kernel.Elements, cfg.containers())
	return plan
}

func sortedNames(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}

func flushContainer(tx *knftables.Transaction, c string) {
	if isSetName(c) {
		tx.Flush(&knftables.Set{Name: c})
	} else {
		tx.Flush(&knftables.Map{Name: c})
	}
}

// writeElementSync adds the element operations of a full render: what the mirror
// wants and the kernel lacks or holds with another verdict, and the deletion of what
// the kernel holds and nobody wants, in the containers the setup keeps.
func writeElementSync(tx *knftables.Transaction, plan *Plan, kernel map[string]map[string]string, containers []string) {
	for _, k := range sortedKeys(plan.elements.m) {
		x, _ := plan.elements.m[k].effective()
		have, ok := kernel[k.container][k.key]
		switch {
		case !ok:
			tx.Add(knftElement(k.container, k.key, x.value, x.comment))
			plan.Stats.ElementsAdded++
		case have != x.value:
			tx.Delete(knftElement(k.container, k.key, "", ""))
			tx.Add(knftElement(k.container, k.key, x.value, x.comment))
			plan.Stats.ElementsDeleted++
			plan.Stats.ElementsAdded++
		}
	}
	for _, c := range containers {
		for _, key := range sortedNames(mapKeys(kernel[c])) {
			if _, ok := plan.elements.m[elementKey{c, key}]; !ok {
				tx.Delete(knftElement(c, key, "", ""))
				plan.Stats.ElementsDeleted++
			}
		}
	}
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// writeObjects writes a service port's chains and affinity sets (all of them when
// rewrite is nil, else those named in rewrite).
func writeObjects(tx *knftables.Transaction, plan *Plan, objs *serviceObjects, rewrite map[string]bool) {
	createChains(tx, plan, objs, rewrite)
	writeSetsAndRules(tx, plan, objs, rewrite)
}

// createChains creates (or, when they exist, flushes) the chains to write: before the
// rules, so that every chain a rule jumps to exists, and before stale affinity sets
// are deleted, so that no rule still names them.
func createChains(tx *knftables.Transaction, plan *Plan, objs *serviceObjects, rewrite map[string]bool) {
	for _, c := range objs.chains {
		if rewrite == nil || rewrite[c.name] {
			tx.Add(&knftables.Chain{Name: c.name})
			tx.Flush(&knftables.Chain{Name: c.name})
			plan.WrittenChains = append(plan.WrittenChains, c.name)
			plan.Stats.Chains++
		}
	}
}

// writeSetsAndRules adds the affinity sets to write, then the rules of the chains to
// write.
func writeSetsAndRules(tx *knftables.Transaction, plan *Plan, objs *serviceObjects, rewrite map[string]bool) {
	for _, s := range objs.sets {
		if rewrite == nil || rewrite[s.name] {
			tx.Add(&knftables.Set{
				Name: s.name, Type: s.addrType,
				// "dynamic" as kube-proxy: some kernels add it themselves, and a
				// later add without it would then fail as a change of flags.
				Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
				Timeout: ptr.To(time.Duration(s.timeoutSeconds) * time.Second),
			})
			plan.Stats.Sets++
		}
	}
	for _, c := range objs.chains {
		if rewrite != nil && !rewrite[c.name] {
			continue
		}
		for _, r := range c.rules {
			rule := &knftables.Rule{Chain: c.name, Rule: r.text}
			if r.comment != "" {
				rule.Comment = ptr.To(r.comment)
			}
			tx.Add(rule)
			plan.Stats.Rules++
		}
	}
}
