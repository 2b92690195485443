package iptables

import (
	"bytes"
	"iter"
	"slices"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Restores is a full render cut into iptables-restore inputs, written one at a time
// as they are consumed (see RenderRestores).
type Restores struct {
	// Stats counts what the restores write, as Render's Stats would for the same
	// snapshot; complete once All has been iterated to the end.
	Stats Stats
	// Payload is set when the render was done whole (it declares few chains, or the
	// backend takes any number): then it is exactly Render's payload, and All yields
	// SplitPayload's restores of it.
	Payload []byte

	plan *streamPlan
	// maxChains and existingNATChains are SplitPayload's arguments for Payload.
	maxChains         int
	existingNATChains []string
}

// WholeRestores returns the Restores of a payload rendered whole, cut by
// SplitPayload where maxChains > 0.
func WholeRestores(plan *Plan, maxChains int, existingNATChains []string) *Restores {
	return &Restores{Stats: plan.Stats, Payload: plan.Payload, maxChains: maxChains, existingNATChains: existingNATChains}
}

// All yields the restores in the order they must be applied. Each slice is valid
// only until the next one is asked for: the restores of a streamed render share one
// buffer. A streamed render's restores are written as they are asked for, once: All
// may be iterated only once.
func (r *Restores) All() iter.Seq[[]byte] {
	if r.plan == nil {
		if len(r.Payload) == 0 { // nothing changed in this family: no restore at all
			return func(func([]byte) bool) {}
		}
		if r.maxChains > 0 {
			return SplitPayload(r.Payload, r.maxChains, r.existingNATChains)
		}
		return func(yield func([]byte) bool) { yield(r.Payload) }
	}
	return r.plan.restores
}

// RenderRestores renders a full sync as the restores that SplitPayload would cut
// Render's payload into, with the same order and the same guarantees (see
// SplitPayload), without ever holding the whole payload: at 10k services × 10
// endpoints that is 48 MB, built in growing buffers and then indexed line by line
// to be split, which made a full sync's peak heap 250 MB against a 20 MB model. Here
// each restore of at most maxChains per-service chains is rendered into one reused
// buffer just before it is applied, and only the shared chains' rules (the last
// restore) are held whole.
//
// It renders every service port twice: a first pass writes their rules in the shared
// chains and counts their own chains (to know which new chains the shared chains
// jump to, which must be created first, and where the batches end), the second
// writes their own chains batch by batch. That costs less than the parsing
// SplitPayload does (BenchmarkSyncFull).
//
// A render whose fixed and per-service nat chains fit one restore, or any render when
// maxChains <= 0, is done whole: Payload is Render's, and All splits it with
// SplitPayload (which counts the stale chains too).
func RenderRestores(snap *endpoints.Snapshot, cfg *Config, existingNATChains []string, maxChains int) *Restores {
	if maxChains <= 0 {
		return WholeRestores(Render(snap, cfg, existingNATChains), 0, nil)
	}
	r := &Restores{}
	sp := planStream(snap, cfg, existingNATChains, maxChains, &r.Stats)
	// The fixed nat chains and the services' own: if they fit one restore, the
	// payload is small, and rendered whole (SplitPayload then decides by the exact
	// count, which includes the stale chains).
	if 4+sp.ownedChains <= maxChains {
		return WholeRestores(Render(snap, cfg, existingNATChains), maxChains, existingNATChains)
	}
	r.plan = sp
	return r
}

// streamPlan is what the first pass of a streamed render learns.
type streamPlan struct {
	snap      *endpoints.Snapshot
	cfg       *Config
	maxChains int
	stats     *Stats

	services    []endpoints.ServicePortName
	chainCounts []int // per entry of services: the chains it owns
	// entries are the per-service chains the shared chains jump to that are not in
	// the kernel yet, in the order the shared chains first name them.
	entries []string
	// exists holds the per-service chains in the kernel before the sync; the second
	// pass removes those it declares, leaving the stale ones.
	exists map[string]bool
	// ownedChains is the number of per-service chains the render declares.
	ownedChains int

	// filter holds the whole filter block's content; services, nodePorts and
	// postrouting the nat shared chains' rules; markMasq KUBE-MARK-MASQ's.
	filter, services0, nodePorts, postrouting, markMasq *tableWriter
	// owned receives the per-service chains in the second pass.
	owned *tableWriter
}

func planStream(snap *endpoints.Snapshot, cfg *Config, existingNATChains []string, maxChains int, stats *Stats) *streamPlan {
	sp := &streamPlan{snap: snap, cfg: cfg, maxChains: maxChains, stats: stats}
	for _, w := range []**tableWriter{&sp.filter, &sp.services0, &sp.nodePorts, &sp.postrouting, &sp.markMasq, &sp.owned} {
		*w = &tableWriter{stats: stats}
	}
	for _, c := range []string{ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall} {
		sp.filter.declare(c)
	}
	if cfg.localhostFirewall() {
		sp.filter.declare(ChainKubeletFirewall)
		sp.filter.rule("-A", ChainKubeletFirewall, localnetDropRule)
	}
	sp.services0.declare(ChainServices)
	sp.nodePorts.declare(ChainNodePorts)
	sp.postrouting.declare(ChainPostrouting)
	sp.markMasq.declare(ChainMarkMasq)
	masq := cfg.masqueradeRules()
	for _, r := range masq.NAT {
		w := sp.postrouting
		if string(r.Chain) == ChainMarkMasq {
			w = sp.markMasq
		}
		w.rule("-A", string(r.Chain), r.Spec)
	}

	// The kernel's per-service chains, for the shared chains' new targets; those
	// that no service claims in the second pass are stale.
	sp.exists = make(map[string]bool, len(existingNATChains))
	for _, c := range existingNATChains {
		if IsServiceChain(c) {
			sp.exists[c] = true
		}
	}
	entrySeen := map[string]bool{}
	count := 0
	b := &fragmentBuilder{filter: sp.filter, sharedOnly: true,
		onChains: func(n int) { count = n },
		natShared: func(chain string, parts []string) {
			w := sp.services0
			if chain == ChainNodePorts {
				w = sp.nodePorts
			}
			w.ruleParts("-A", chain, parts)
			// Every shared nat rule ends in "-j TARGET".
			target := parts[len(parts)-1]
			if IsServiceChain(target) && !sp.exists[target] && !entrySeen[target] {
				entrySeen[target] = true
				sp.entries = append(sp.entries, target)
			}
		},
	}
	sp.services = snap.SortedServices()
	sp.chainCounts = make([]int, len(sp.services))
	for i, name := range sp.services {
		count = 0
		if writeService(b, snap.Services[name], snap.Endpoints[name], cfg) {
			stats.Services++
		}
		sp.chainCounts[i] = count
		sp.ownedChains += count
	}
	for _, r := range masq.Filter {
		sp.filter.rule("-A", string(r.Chain), countInvalidDrops(r.Spec, cfg))
	}
	for _, spec := range nodePortsJumps(cfg) {
		sp.services0.rule("-A", ChainServices, spec)
	}
	return sp
}

// restores yields the restores in SplitPayload's order: KUBE-MARK-MASQ, the new
// chains the shared chains jump to (empty), the per-service chains a batch of service
// ports at a time, the shared chains (the filter block and nat's fixed chains), and
// the stale chains' deletions.
func (sp *streamPlan) restores(yield func([]byte) bool) {
	var out bytes.Buffer
	hooks := sp.cfg.hooks
	// 1. The chains per-service chains jump to, and the canaries.
	out.Grow(64 << 10)
	hooks.writeCanaries(&out, "mangle", "filter")
	out.WriteString("*nat\n")
	hooks.writeCanaryDecl(&out)
	sp.markMasq.writeBody(&out)
	out.WriteString("COMMIT\n")
	if !yield(out.Bytes()) {
		return
	}
	// 2. Empty declarations of the entry chains that do not exist yet.
	for entries := sp.entries; len(entries) > 0; {
		n := min(sp.maxChains, len(entries))
		out.Reset()
		out.WriteString("*nat\n")
		for _, c := range entries[:n] {
			writeDecl(&out, c)
		}
		out.WriteString("COMMIT\n")
		if !yield(out.Bytes()) {
			return
		}
		entries = entries[n:]
	}
	// 3. The per-service chains, each service port's together.
	b := &fragmentBuilder{nat: sp.owned, ownedOnly: true, onChain: func(name string) { delete(sp.exists, name) }}
	batch := 0
	emit := func() bool {
		out.Reset()
		out.Grow(len("*nat\nCOMMIT\n") + sp.owned.decls.Len() + sp.owned.rules.Len())
		out.WriteString("*nat\n")
		sp.owned.writeBody(&out)
		out.WriteString("COMMIT\n")
		sp.owned.decls.Reset()
		sp.owned.rules.Reset()
		batch = 0
		return yield(out.Bytes())
	}
	for i, name := range sp.services {
		n := sp.chainCounts[i]
		if n == 0 {
			continue
		}
		if batch > 0 && batch+n > sp.maxChains && !emit() {
			return
		}
		writeService(b, sp.snap.Services[name], sp.snap.Endpoints[name], sp.cfg)
		batch += n
	}
	if batch > 0 && !emit() {
		return
	}
	// 4. The shared chains: this makes the new services reachable and the stale
	// chains unreferenced. The hooks go in here, so that they appear when their
	// target chains are complete.
	sp.stats.FilterRules, sp.stats.FilterWritten = sp.filter.appended, sp.filter.written
	for _, w := range []*tableWriter{sp.services0, sp.nodePorts, sp.postrouting, sp.markMasq, sp.owned} {
		sp.stats.NATRules += w.appended
		sp.stats.NATWritten += w.written
	}
	out.Reset()
	out.Grow(sp.filter.decls.Len() + sp.filter.rules.Len() + sp.services0.rules.Len() + sp.nodePorts.rules.Len() + 64<<10)
	out.WriteString("*filter\n")
	out.Write(sp.filter.decls.Bytes())
	hooks.writeDecls(&out, "filter")
	out.Write(sp.filter.rules.Bytes())
	hooks.writeInserts(&out, "filter")
	out.WriteString("COMMIT\n*nat\n")
	for _, w := range []*tableWriter{sp.services0, sp.nodePorts, sp.postrouting} {
		out.Write(w.decls.Bytes())
	}
	hooks.writeDecls(&out, "nat")
	for _, w := range []*tableWriter{sp.services0, sp.nodePorts, sp.postrouting} {
		out.Write(w.rules.Bytes())
	}
	hooks.writeInserts(&out, "nat")
	out.WriteString("COMMIT\n")
	if !yield(out.Bytes()) {
		return
	}
	// 5. The stale chains, referrers before the chains they jump to. Counted as
	// Render counts them: declared, then deleted.
	stale := make([]string, 0, len(sp.exists))
	for c := range sp.exists {
		stale = append(stale, c)
	}
	sp.stats.Chains += len(stale)
	sp.stats.DeletedChains += len(stale)
	slices.Sort(stale)
	slices.SortStableFunc(stale, func(a, b string) int { return deletionRank(a) - deletionRank(b) })
	for len(stale) > 0 {
		n := min(sp.maxChains, len(stale))
		out.Reset()
		out.WriteString("*nat\n")
		for _, c := range stale[:n] {
			writeDecl(&out, c)
		}
		for _, c := range stale[:n] {
			out.WriteString("-X ")
			out.WriteString(c)
			out.WriteByte('\n')
		}
		out.WriteString("COMMIT\n")
		if !yield(out.Bytes()) {
			return
		}
		stale = stale[n:]
	}
}

// writeDecl writes a chain declaration line.
func writeDecl(out *bytes.Buffer, chain string) {
	out.WriteString(":")
	out.WriteString(chain)
	out.WriteString(" - [0:0]\n")
}

// writeBody writes a table block's lines without its header and COMMIT:
// declarations, rules, deletions.
func (w *tableWriter) writeBody(out *bytes.Buffer) {
	out.Write(w.decls.Bytes())
	out.Write(w.rules.Bytes())
	out.Write(w.deletes.Bytes())
}
