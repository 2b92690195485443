package nftables

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// PortsPerTransaction is how many service ports a full render puts in one transaction
// (RenderInTransactions). The kernel's cost of a transaction grows with the square of
// its size: each anonymous set a rule creates walks the batch's pending operations
// (__nft_set_trans_bind, nft_set_lookup_global). At 10k services × 10 endpoints, one
// ~560k-line transaction took 17.7 s into an empty table and 79.7 s over the loaded
// one; split every 1000 service ports it took REPLACE_COLD and REPLACE_RESTART
// (docs/nftables.md, "Full syncs in several transactions").
const PortsPerTransaction = 1000

// Plan is the outcome of a render: the transactions to apply in order, and what
// applying them changes in the Proxier's memory.
type Plan struct {
	// Full is true for a full render.
	Full bool
	// Tx is a partial render's one transaction (nil in a full render's plan, which has
	// Txs). It has no operations when nothing needs writing.
	Tx *knftables.Transaction
	// Txs are a full render's transactions, to apply in this order
	// (RenderInTransactions).
	Txs []*knftables.Transaction
	// Stats counts what the transactions write.
	Stats Stats
	// StaleChains are the service chains this plan flushes because nothing needs
	// them any more; they are deleted by a later transaction, at least a second after
	// this plan is applied.
	StaleChains []string
	// WrittenChains are the service chains this plan (re)writes; a chain that was
	// waiting for deletion and is written again is needed again.
	WrittenChains []string

	// elements is the new mirror (full renders) and delta the change to it
	// (partial renders), committed when every transaction succeeded.
	elements *Elements
	delta    elementDelta
}

// Transactions returns the plan's transactions in the order they are applied.
func (p *Plan) Transactions() []*knftables.Transaction {
	if p.Txs != nil {
		return p.Txs
	}
	return []*knftables.Transaction{p.Tx}
}

// NumOperations returns the number of operations in all the plan's transactions.
func (p *Plan) NumOperations() int {
	n := 0
	for _, tx := range p.Transactions() {
		n += tx.NumOperations()
	}
	return n
}

// String returns the exact `nft -f` input of the plan: its one transaction as is, or
// its transactions in order, each after a "# transaction i of n" comment line. Loaded
// by one `nft -f`, the text is one transaction with the same effect.
func (p *Plan) String() string {
	txs := p.Transactions()
	if len(txs) == 1 {
		return txs[0].String()
	}
	var b strings.Builder
	for i, tx := range txs {
		fmt.Fprintf(&b, "# transaction %d of %d\n", i+1, len(txs))
		b.WriteString(tx.String())
	}
	return b.String()
}

// Stats counts the work in a Plan, for logs.
type Stats struct {
	// Services is the number of service ports rendered.
	Services int
	// Chains is the number of service chains written (created or flushed and
	// refilled); Rules the rules in them.
	Chains, Rules int
	// UnchangedChains is the number of service chains a full render left alone: the
	// kernel's rules carry the tags of their render (KernelState.RuleTags).
	UnchangedChains int
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
	// RuleTags are, per chain, the tags of its rules in order as the kernel holds them
	// (KernelRule.Tag, 0 for a rule without one); nil when not read. A service chain
	// whose rules carry exactly the tags of its render holds that render, and a full
	// render leaves it alone instead of flushing and rewriting it (unchangedChains).
	RuleTags map[string][]uint64
}

// Render is RenderInTransactions with PortsPerTransaction service ports per
// transaction.
func Render(newTx func() *knftables.Transaction, snap *endpoints.Snapshot, cfg *Config, kernel KernelState) *Plan {
	return RenderInTransactions(newTx, snap, cfg, kernel, PortsPerTransaction)
}

// RenderInTransactions renders snap in full, in transactions from newTx (the Proxier's
// kernel or a knftables.Fake): the fixed objects, every service's chains and affinity
// sets, the element changes that turn the kernel's elements into the wanted ones, and
// the flush of every service chain no service needs (deleted later), which also takes
// over what a kube-proxy that ran before left behind. Every chain is flushed and
// rewritten, so traffic sees a service's old rules or its new ones, never none.
//
// With more than portsPerTx service ports the plan has several transactions, because
// the kernel's cost grows with the square of a transaction's size
// (PortsPerTransaction): first the table and everything that does not depend on
// services; then the service ports portsPerTx at a time, each with its chains,
// affinity sets and rules and then the elements it owns (those whose verdict jumps to
// its chains come after the chains exist, and a port's objects never span two
// transactions, so each service is always consistent); last the stale chains'
// flushes, the stale affinity sets' deletions and the deletion of elements nobody
// wants. Up to portsPerTx ports, it is one transaction in that order, atomic as
// kube-proxy's.
func RenderInTransactions(newTx func() *knftables.Transaction, snap *endpoints.Snapshot, cfg *Config, kernel KernelState, portsPerTx int) *Plan {
	plan := &Plan{Full: true, elements: NewElements()}
	ports := renderAll(plan, snap, cfg)
	single := len(ports) <= portsPerTx
	var one *knftables.Transaction
	next := func() *knftables.Transaction {
		if !single || one == nil {
			plan.Txs = append(plan.Txs, newTx())
		}
		one = plan.Txs[len(plan.Txs)-1]
		return one
	}

	tx := next()
	staleRejects, kernel := staleLocalhostRejects(cfg, kernel)
	writeSetupDeleting(tx, cfg, kernel.RecreateBaseChains, staleRejects)
	plan.Stats.ElementsDeleted += len(staleRejects)
	for _, c := range cfg.containers() {
		if _, ok := kernel.Elements[c]; !ok {
			// Empty until each port's group writes its elements again: a container
			// that could not be listed is a repair, as in kube-proxy.
			flushContainer(tx, c)
		}
	}

	owned := elementsByGroup(plan.elements, ports, portsPerTx)
	for g := 0; g*portsPerTx < len(ports); g++ {
		tx := next()
		active := ports[g*portsPerTx : min((g+1)*portsPerTx, len(ports))]
		for _, p := range active {
			writeObjects(tx, plan, p.objs, rewriteOf(p.objs, kernel.RuleTags, plan))
		}
		writeElementChanges(tx, plan, kernel.Elements, owned[g])
	}

	tx = next()
	writeStale(tx, plan, ports, kernel)
	writeElementDeletions(tx, plan, kernel.Elements, cfg.containers())
	// A group whose ports are as the kernel has them but for their elements, and
	// the last transaction, may be empty.
	plan.Txs = slices.DeleteFunc(plan.Txs, func(tx *knftables.Transaction) bool { return tx.NumOperations() == 0 })
	return plan
}

// renderedPort is one service port's objects in a full render.
type renderedPort struct {
	name endpoints.ServicePortName
	objs *serviceObjects
}

// renderAll renders every service port of snap in name order, and fills the plan's
// element mirror with their elements.
func renderAll(plan *Plan, snap *endpoints.Snapshot, cfg *Config) []renderedPort {
	var ports []renderedPort
	for _, name := range snap.SortedServices() {
		objs := renderService(snap.Services[name], snap.Endpoints[name], cfg)
		if objs == nil {
			continue
		}
		plan.Stats.Services++
		ports = append(ports, renderedPort{name: name, objs: objs})
		for _, el := range objs.elements {
			k := elementKey{el.container, el.key}
			plan.elements.m[k] = plan.elements.m[k].with(owned{port: name, value: el.value, comment: el.comment})
		}
	}
	return ports
}

// elementsByGroup returns, per group of portsPerTx ports, the keys of the elements
// whose value is that of one of the group's ports (the effective owner, whose chains
// a verdict may jump to), sorted.
func elementsByGroup(mirror *Elements, ports []renderedPort, portsPerTx int) [][]elementKey {
	groupOf := make(map[endpoints.ServicePortName]int, len(ports))
	for i, p := range ports {
		groupOf[p.name] = i / portsPerTx
	}
	out := make([][]elementKey, (len(ports)+portsPerTx-1)/portsPerTx)
	for _, k := range sortedKeys(mirror.m) {
		x, _ := mirror.m[k].effective()
		g := groupOf[x.port]
		out[g] = append(out[g], k)
	}
	return out
}

// writeStale flushes the service chains in the kernel that no port needs (deleted
// later, kube-proxy's two steps), and deletes the affinity sets no port needs: after
// every rule that named them was rewritten or flushed.
func writeStale(tx *knftables.Transaction, plan *Plan, ports []renderedPort, kernel KernelState) {
	active := map[string]bool{}
	activeSets := map[string]bool{}
	for _, p := range ports {
		for _, c := range p.objs.chains {
			active[c.name] = true
		}
		for _, s := range p.objs.sets {
			activeSets[s.name] = true
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

// writeElementChanges adds the elements in keys (of the plan's mirror) that the
// kernel lacks, or holds with another value.
func writeElementChanges(tx *knftables.Transaction, plan *Plan, kernel map[string]map[string]string, keys []elementKey) {
	for _, k := range keys {
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
}

// writeElementDeletions deletes what the kernel holds and nobody wants, in the
// containers the setup keeps.
func writeElementDeletions(tx *knftables.Transaction, plan *Plan, kernel map[string]map[string]string, containers []string) {
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

// rewriteOf returns what a full render writes of one service port: every affinity set
// (adding one that exists with the same timeout changes nothing) and every chain but
// those whose kernel rules carry the tags of their rendered rules (nil: everything).
//
// Why: a full sync that flushes and rewrites every chain makes the kernel create an
// anonymous set for each rule with a map, and its cost grows with the square of the
// table (a restart at 10k services × 10 endpoints: 70–92 s through nft, most of it in
// the kernel). A chain the netlink writer wrote from the same text is already right.
func rewriteOf(objs *serviceObjects, tags map[string][]uint64, plan *Plan) map[string]bool {
	if tags == nil {
		return nil
	}
	rewrite := make(map[string]bool, len(objs.chains)+len(objs.sets))
	for _, s := range objs.sets {
		rewrite[s.name] = true
	}
	for i := range objs.chains {
		c := &objs.chains[i]
		if chainTagged(c, tags[c.name]) {
			plan.Stats.UnchangedChains++
			continue
		}
		rewrite[c.name] = true
	}
	return rewrite
}

// chainTagged reports whether have are the tags of c's rules, one for one.
func chainTagged(c *chainSpec, have []uint64) bool {
	if len(have) != len(c.rules) || len(have) == 0 {
		return false
	}
	for i, r := range c.rules {
		var comment *string
		if r.comment != "" {
			comment = &r.comment
		}
		if have[i] != RuleTag(c.name, r.text, comment) {
			return false
		}
	}
	return true
}
