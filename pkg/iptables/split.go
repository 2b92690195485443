package iptables

import (
	"bytes"
	"iter"
	"slices"
	"strings"
)

// SplitPayload cuts a payload (Render's or RenderPartial's output) into restores, in
// an order where every state between two restores is a valid ruleset that routes
// every service consistently. existingNATChains are the nat chains in the kernel
// before the sync.
//
//  1. The nat chains that per-service chains jump to and that jump to none themselves
//     (KUBE-MARK-MASQ), each written whole.
//  2. Empty declarations of the per-service chains that the shared chains jump to
//     (KUBE-SVC-, KUBE-EXT-, ...) and that do not exist yet. Nothing jumps to them yet.
//  3. The per-service chains, one service port at a time (a chain together with every
//     per-service chain it reaches), whole, several service ports to a restore. A
//     service port's chains are replaced together, atomically; new ones stay
//     unreferenced.
//  4. The filter block and the rest of the nat block: KUBE-SERVICES, KUBE-NODEPORTS,
//     KUBE-POSTROUTING and (in a partial payload) the -I/-D edits of the shared
//     chains. After it nothing live jumps to a chain the payload deletes.
//  5. The deleted chains (stale ones in a full payload, those of removed services or
//     endpoints in a partial one), flushed and deleted in batches, referrers before
//     the chains they jump to: KUBE-FW-, then KUBE-EXT-, KUBE-SVC-/KUBE-SVL-, and
//     KUBE-SEP- last, the order in which kube-proxy's chains (and Switchyard's) jump
//     to one another. The kernel's copies of these chains may still hold those jumps.
//
// The bound: every restore declares at most maxChains nat chains, with two
// exceptions. A single service port with more chains than that (a service with
// more than maxChains-1 endpoints) gets a restore of its own, since its chains must
// change together. Restore 4 declares the fixed shared chains, whatever their number
// (3 in nat and 5 or 6 in filter with Render's layout), and nothing else.
//
// The order is what makes the split fast, not only the size of each restore:
// iptables-nft-restore --noflush finds a jump's target chain by walking a list that
// holds the chains the restore declares, then the table's chains in creation order.
// Measured at 10k services × 10 endpoints (110k chains), a restore of 4,000 KUBE-SVC-
// chains whose KUBE-SEP- targets were created by earlier restores took 95 s; with each
// service's KUBE-SEP- chains declared in the same restore, and the KUBE-SVC- chains
// created first so that KUBE-SERVICES finds them near the head of the list, the whole
// cold sync's restores took 15 s in batches of 4,000 chains and 6.6 s in batches of
// 1,000 (the full restore of the same ruleset without --noflush: ~10 s).
//
// Only restore 4 makes new services reachable, and chains are deleted only once
// nothing jumps to them. The split gives up atomicity across services, not within
// one: a failure part-way leaves some services on new rules and some on old ones,
// each consistent (and maybe stale chains not yet deleted, which nothing uses), and
// the caller's next sync is full again. It returns the payload unsplit when it
// declares no more than maxChains chains, or maxChains <= 0, or in a shape Render and
// RenderPartial never produce (a per-service chain jumping to a shared or deleted
// chain, or rules written to a deleted chain).
func SplitPayload(payload []byte, maxChains int, existingNATChains []string) iter.Seq[[]byte] {
	whole := func(yield func([]byte) bool) { yield(payload) }
	if maxChains <= 0 || countNATDeclarations(payload) <= maxChains {
		return whole
	}
	before, natBlock, after, ok := cutTable(payload, "nat")
	if !ok {
		return whole
	}
	// Lines are kept as subslices of payload: at 10k services it is ~50 MB, and
	// copying it would raise the proxy's peak memory by as much.
	type chain struct {
		name  string
		rules [][]byte
		jumps []string
		group *chain // union-find parent: the chains of one service port
	}
	chains := map[string]*chain{}
	var order []string // declaration order
	var other [][]byte // lines not in a per-chain bucket: -X and anything unexpected
	for line := range bytes.Lines(natBlock) {
		switch {
		case bytes.HasPrefix(line, []byte(":")):
			name, _, _ := bytes.Cut(line[1:], []byte(" "))
			if _, ok := chains[string(name)]; !ok {
				c := &chain{name: string(name)}
				c.group = c
				chains[c.name] = c
				order = append(order, c.name)
			}
		case bytes.HasPrefix(line, []byte("-A ")):
			name, _, _ := bytes.Cut(line[3:], []byte(" "))
			c, ok := chains[string(name)]
			if !ok {
				other = append(other, line)
				continue
			}
			c.rules = append(c.rules, line)
			c.jumps = appendJumpTargets(c.jumps, line)
		default:
			other = append(other, line)
		}
	}
	// Chains that are deleted go in the batches after the last restore; their -X
	// lines are written there.
	deleted := map[string]bool{}
	kept := other[:0:0]
	for _, line := range other {
		if name, ok := bytes.CutPrefix(line, []byte("-X ")); ok {
			if c, declared := chains[string(bytes.TrimSpace(name))]; declared {
				if len(c.rules) > 0 {
					return whole
				}
				deleted[c.name] = true
				continue
			}
		}
		kept = append(kept, line)
	}
	other = kept
	split := func(c *chain) bool { return IsServiceChain(c.name) && !deleted[c.name] }
	// A per-service chain that jumps to a chain of the last restore could not be
	// written before it: keep the payload whole (Render never produces one).
	targets := map[string]bool{} // chains per-service chains jump to
	for _, c := range chains {
		if !split(c) {
			continue
		}
		for _, target := range c.jumps {
			t, ok := chains[target]
			if ok && !split(t) && (deleted[target] || jumpsToServiceChain(t.jumps)) {
				return whole
			}
			targets[target] = true
		}
	}
	// Group the per-service chains by the jumps between them: a service port's
	// KUBE-FW-, KUBE-EXT-, KUBE-SVC-/KUBE-SVL- and KUBE-SEP- chains end up together.
	find := func(c *chain) *chain {
		for c.group != c {
			c.group = c.group.group
			c = c.group
		}
		return c
	}
	for _, name := range order {
		c := chains[name]
		if !split(c) {
			continue
		}
		for _, target := range c.jumps {
			if t, ok := chains[target]; ok && split(t) {
				if a, b := find(c), find(t); a != b {
					b.group = a
				}
			}
		}
	}
	exists := make(map[string]bool, len(existingNATChains))
	for _, name := range existingNATChains {
		exists[name] = true
	}
	var first, last, entries, stale []*chain
	members := map[*chain][]*chain{}
	var roots []*chain
	for _, name := range order {
		c := chains[name]
		switch {
		case deleted[name]:
			stale = append(stale, c)
		case split(c):
			root := find(c)
			if len(members[root]) == 0 {
				roots = append(roots, root)
			}
			members[root] = append(members[root], c)
		case targets[name] && !jumpsToServiceChain(c.jumps):
			first = append(first, c)
		default:
			last = append(last, c)
		}
	}
	entrySeen := map[string]bool{}
	for _, c := range last {
		for _, target := range c.jumps {
			if t, ok := chains[target]; ok && split(t) && !exists[target] && !entrySeen[target] {
				entrySeen[target] = true
				entries = append(entries, t)
			}
		}
	}

	return func(yield func([]byte) bool) {
		// One buffer, reused: each restore is yielded before the next is built.
		var out bytes.Buffer
		emit := func(declared, written []*chain) bool {
			if len(declared)+len(written) == 0 {
				return true
			}
			out.Reset()
			out.WriteString("*nat\n")
			for _, c := range declared {
				out.WriteString(":" + c.name + " - [0:0]\n")
			}
			for _, c := range written {
				out.WriteString(":" + c.name + " - [0:0]\n")
			}
			for _, c := range written {
				for _, r := range c.rules {
					out.Write(r)
				}
			}
			out.WriteString("COMMIT\n")
			return yield(out.Bytes())
		}
		if !emit(nil, first) {
			return
		}
		for len(entries) > 0 {
			n := min(maxChains, len(entries))
			if !emit(entries[:n], nil) {
				return
			}
			entries = entries[n:]
		}
		var batch []*chain
		for _, root := range roots {
			group := members[root]
			if len(batch) > 0 && len(batch)+len(group) > maxChains {
				if !emit(nil, batch) {
					return
				}
				batch = batch[:0]
			}
			batch = append(batch, group...)
		}
		if !emit(nil, batch) {
			return
		}
		out.Reset()
		out.Write(before)
		out.WriteString("*nat\n")
		for _, c := range last {
			out.WriteString(":" + c.name + " - [0:0]\n")
		}
		for _, c := range last {
			for _, r := range c.rules {
				out.Write(r)
			}
		}
		for _, line := range other {
			out.Write(line)
		}
		out.WriteString("COMMIT\n")
		out.Write(after)
		if !yield(out.Bytes()) {
			return
		}
		slices.SortStableFunc(stale, func(a, b *chain) int { return deletionRank(a.name) - deletionRank(b.name) })
		for len(stale) > 0 {
			batch := stale[:min(maxChains, len(stale))]
			stale = stale[len(batch):]
			out.Reset()
			out.WriteString("*nat\n")
			for _, c := range batch {
				out.WriteString(":" + c.name + " - [0:0]\n")
			}
			for _, c := range batch {
				out.WriteString("-X " + c.name + "\n")
			}
			out.WriteString("COMMIT\n")
			if !yield(out.Bytes()) {
				return
			}
		}
	}
}

// deletionRank orders deleted chains so that a chain is deleted no earlier than every
// chain that may jump to it: KUBE-FW- jumps to KUBE-EXT-, KUBE-EXT- to KUBE-SVC- and
// KUBE-SVL-, and those to KUBE-SEP-.
func deletionRank(name string) int {
	for rank, prefix := range []string{PrefixFirewall, PrefixExternal, PrefixServiceCluster, PrefixServiceLocal, PrefixEndpoint} {
		if strings.HasPrefix(name, prefix) {
			return rank
		}
	}
	return 5
}

// countNATDeclarations counts ":CHAIN" lines in the payload's nat block.
func countNATDeclarations(payload []byte) int {
	_, nat, _, ok := cutTable(payload, "nat")
	if !ok {
		return 0
	}
	n := bytes.Count(nat, []byte("\n:"))
	if bytes.HasPrefix(nat, []byte(":")) {
		n++
	}
	return n
}

// cutTable splits a payload around one table's block: before holds everything up to
// its "*table" line, body the lines between that and its COMMIT (excluded), after
// everything following the COMMIT line. All three share payload's memory.
func cutTable(payload []byte, table string) (before, body, after []byte, ok bool) {
	header := []byte("*" + table + "\n")
	start := 0
	if !bytes.HasPrefix(payload, header) {
		i := bytes.Index(payload, append([]byte("\n"), header...))
		if i < 0 {
			return nil, nil, nil, false
		}
		start = i + 1
	}
	bodyStart := start + len(header)
	end := bytes.Index(payload[bodyStart:], []byte("COMMIT\n"))
	if end < 0 || (end > 0 && payload[bodyStart+end-1] != '\n') {
		return nil, nil, nil, false
	}
	return payload[:start:start], payload[bodyStart : bodyStart+end : bodyStart+end], payload[bodyStart+end+len("COMMIT\n"):], true
}

// appendJumpTargets appends the chains a rule line jumps or goes to.
func appendJumpTargets(targets []string, line []byte) []string {
	for _, flag := range [][]byte{[]byte(" -j "), []byte(" -g ")} {
		rest := line
		for {
			i := bytes.Index(rest, flag)
			if i < 0 {
				break
			}
			rest = rest[i+len(flag):]
			end := bytes.IndexAny(rest, " \n")
			if end < 0 {
				end = len(rest)
			}
			if end > 0 {
				targets = append(targets, string(rest[:end]))
			}
		}
	}
	return targets
}

func jumpsToServiceChain(targets []string) bool {
	for _, t := range targets {
		if IsServiceChain(t) {
			return true
		}
	}
	return false
}
