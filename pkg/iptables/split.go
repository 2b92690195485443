package iptables

import (
	"bytes"
	"strings"
)

// ChainLimiter is implemented by an Interface whose restores slow down superlinearly
// with the number of chains one restore declares. iptables-nft-restore --noflush is
// one: declaring N chains in one transaction took 0.2 s for 4,000, 4.6 s for 16,000 and
// 32 s for 32,000 (2 cores, iptables 1.8.9, kernel 6.18), while eight restores of 4,000
// each took 0.2 s apiece. perf puts ~90% of that time in strcmp walking a linked list
// inside xtables-nft-multi: a name lookup that is linear per chain or jump. A cold full sync at 10k services × 10 endpoints declares about
// 110k chains and would take most of an hour in one restore; kube-proxy's first sync
// has exactly this problem.
type ChainLimiter interface {
	// MaxChainsPerRestore is the number of chain declarations above which a full
	// payload is split into several restores (see SplitFull); 0 means never split.
	MaxChainsPerRestore() int
}

// SplitFull cuts a full payload (Render's output) into restores that each declare at
// most maxChains chains (a single service port with more endpoints gets a restore of
// its own), in an order where every state between two restores is a valid ruleset that
// routes every service consistently. existingNATChains are the nat chains in the
// kernel before the sync.
//
//  1. The nat chains that per-service chains jump to and that jump to none themselves
//     (KUBE-MARK-MASQ), each written whole.
//  2. Empty declarations of the per-service chains that the shared chains jump to
//     (KUBE-SVC-, KUBE-EXT-, ...) and that do not exist yet. Nothing jumps to them yet.
//  3. The per-service chains, one service port at a time (a chain together with every
//     per-service chain it reaches), whole, several service ports to a restore. A
//     service port's chains are replaced together, atomically; new ones stay
//     unreferenced.
//  4. Last, the filter block and the rest of the nat block: KUBE-SERVICES,
//     KUBE-NODEPORTS, the stale chains' flushes and deletions.
//
// The order is what makes the split fast, not only the size of each restore:
// iptables-nft-restore --noflush finds a jump's target chain by walking a list that
// holds the chains the restore declares, then the table's chains in creation order.
// Measured at 10k services × 10 endpoints (110k chains), a restore of 4,000 KUBE-SVC-
// chains whose KUBE-SEP- targets were created by earlier restores took 95 s; with each
// service's KUBE-SEP- chains declared in the same restore, and the KUBE-SVC- chains
// created first so that KUBE-SERVICES finds them near the head of the list, the whole
// cold sync's restores took 15 s in batches of 4,000 chains and ~8.5 s in batches of
// 1,000 (the full restore of the same ruleset without --noflush: ~11 s).
//
// Only the last restore makes new services reachable, and stale chains are deleted
// only once nothing jumps to them. The split gives up atomicity across services, not
// within one: a failure part-way leaves some services on new rules and some on old
// ones, each consistent, and the caller's next sync is full again. It returns the
// payload unsplit when it declares no more than maxChains chains, or maxChains <= 0.
func SplitFull(payload []byte, maxChains int, existingNATChains []string) [][]byte {
	if maxChains <= 0 || countNATDeclarations(payload) <= maxChains {
		return [][]byte{payload}
	}
	before, natBlock, after, ok := cutTable(payload, "nat")
	if !ok {
		return [][]byte{payload}
	}
	type chain struct {
		name  string
		rules []string
		jumps []string
		group *chain // union-find parent: the chains of one service port
		size  int
	}
	chains := map[string]*chain{}
	var order []string // declaration order
	var other []string // lines not in a per-chain bucket: -X and anything unexpected
	for line := range strings.Lines(natBlock) {
		switch {
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if _, ok := chains[name]; !ok {
				c := &chain{name: name, size: 1}
				c.group = c
				chains[name] = c
				order = append(order, name)
			}
		case strings.HasPrefix(line, "-A "):
			name, _, _ := strings.Cut(line[3:], " ")
			c, ok := chains[name]
			if !ok {
				other = append(other, line)
				continue
			}
			c.rules = append(c.rules, line)
			c.jumps = append(c.jumps, jumpTargets(line)...)
		default:
			other = append(other, line)
		}
	}
	// Chains that are deleted stay in the last restore.
	deleted := map[string]bool{}
	for _, line := range other {
		if strings.HasPrefix(line, "-X ") {
			deleted[strings.TrimSpace(line[3:])] = true
		}
	}
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
				return [][]byte{payload}
			}
			targets[target] = true
		}
	}
	// Group the per-service chains by the jumps between them: a service port's
	// KUBE-FW-, KUBE-EXT-, KUBE-SVC-/KUBE-SVL- and KUBE-SEP- chains end up together.
	var find func(c *chain) *chain
	find = func(c *chain) *chain {
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
				a, b := find(c), find(t)
				if a != b {
					b.group = a
					a.size += b.size
				}
			}
		}
	}
	exists := make(map[string]bool, len(existingNATChains))
	for _, name := range existingNATChains {
		exists[name] = true
	}
	var first, last, entries []*chain
	members := map[*chain][]*chain{}
	var roots []*chain
	for _, name := range order {
		c := chains[name]
		switch {
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
	for _, c := range last {
		for _, target := range c.jumps {
			if t, ok := chains[target]; ok && split(t) && !exists[target] {
				entries = append(entries, t)
			}
		}
	}
	var restores [][]byte
	emit := func(declared []*chain, written []*chain) {
		if len(declared)+len(written) == 0 {
			return
		}
		var out bytes.Buffer
		out.WriteString("*nat\n")
		for _, c := range declared {
			out.WriteString(":" + c.name + " - [0:0]\n")
		}
		for _, c := range written {
			out.WriteString(":" + c.name + " - [0:0]\n")
		}
		for _, c := range written {
			for _, r := range c.rules {
				out.WriteString(r)
			}
		}
		out.WriteString("COMMIT\n")
		restores = append(restores, out.Bytes())
	}
	emit(nil, first)
	seen := map[string]bool{}
	for len(entries) > 0 {
		var batch []*chain
		for len(entries) > 0 && len(batch) < maxChains {
			if c := entries[0]; !seen[c.name] {
				seen[c.name] = true
				batch = append(batch, c)
			}
			entries = entries[1:]
		}
		emit(batch, nil)
	}
	var batch []*chain
	for _, root := range roots {
		group := members[root]
		if len(batch) > 0 && len(batch)+len(group) > maxChains {
			emit(nil, batch)
			batch = nil
		}
		batch = append(batch, group...)
	}
	emit(nil, batch)

	var out bytes.Buffer
	out.WriteString(before)
	out.WriteString("*nat\n")
	for _, c := range last {
		out.WriteString(":" + c.name + " - [0:0]\n")
	}
	for _, c := range last {
		for _, r := range c.rules {
			out.WriteString(r)
		}
	}
	for _, line := range other {
		out.WriteString(line)
	}
	out.WriteString("COMMIT\n")
	out.WriteString(after)
	return append(restores, out.Bytes())
}

// countNATDeclarations counts ":CHAIN" lines in the payload's nat block.
func countNATDeclarations(payload []byte) int {
	_, nat, _, ok := cutTable(payload, "nat")
	if !ok {
		return 0
	}
	return strings.Count(nat, "\n:") + boolToInt(strings.HasPrefix(nat, ":"))
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cutTable splits a payload around one table's block: before holds everything up to
// its "*table" line, body the lines between that and its COMMIT (excluded), after
// everything following the COMMIT line.
func cutTable(payload []byte, table string) (before, body, after string, ok bool) {
	text := string(payload)
	header := "*" + table + "\n"
	start := 0
	if !strings.HasPrefix(text, header) {
		i := strings.Index(text, "\n"+header)
		if i < 0 {
			return "", "", "", false
		}
		start = i + 1
	}
	bodyStart := start + len(header)
	end := strings.Index(text[bodyStart:], "COMMIT\n")
	if end < 0 || (end > 0 && text[bodyStart+end-1] != '\n') {
		return "", "", "", false
	}
	return text[:start], text[bodyStart : bodyStart+end], text[bodyStart+end+len("COMMIT\n"):], true
}

// jumpTargets returns the chains a rule line jumps or goes to.
func jumpTargets(line string) []string {
	var targets []string
	fields := strings.Fields(line)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-j" || fields[i] == "-g" {
			targets = append(targets, fields[i+1])
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
