package iptables

import (
	"bytes"
	"strings"
)

// ChainLimiter is implemented by an Interface whose restores slow down superlinearly
// with the number of chains one restore declares. iptables-nft-restore --noflush is
// one: declaring N chains in one transaction took 0.2 s for 4,000, 4.6 s for 16,000 and
// 32 s for 32,000 (2 cores, iptables 1.8.9, kernel 6.18), while eight restores of 4,000
// each took 0.2 s apiece. A cold full sync at 10k services × 10 endpoints declares about
// 110k chains and would take most of an hour in one restore; kube-proxy's first sync
// has exactly this problem.
type ChainLimiter interface {
	// MaxChainsPerRestore is the number of chain declarations above which a full
	// payload is split into several restores (see SplitFull); 0 means never split.
	MaxChainsPerRestore() int
}

// SplitFull cuts a full payload (Render's output) into restores that each declare at
// most maxChains chains, in an order where every state between two restores is a valid
// ruleset that still routes every service consistently:
//
//  1. the nat chains that per-service chains jump to and that jump to none themselves
//     (KUBE-MARK-MASQ), each written whole;
//  2. the per-service chains, whole, in dependency order (KUBE-SEP- before the
//     KUBE-SVC-/KUBE-SVL- that jump to them, before KUBE-EXT-, before KUBE-FW-); a
//     chain rewritten here is either new, hence unreferenced, or replaced atomically by
//     content that only jumps to chains already final;
//  3. last, the filter block and the rest of the nat block: KUBE-SERVICES,
//     KUBE-NODEPORTS, the stale chains' flushes and deletions.
//
// Only the last restore makes new services reachable, and stale chains are deleted
// only once nothing jumps to them. The split gives up atomicity across services, not
// within one: a failure part-way leaves some services on new rules and some on old
// ones, each consistent, and the caller's next sync is full again. It returns the
// payload unsplit when it declares no more than maxChains chains, or maxChains <= 0.
func SplitFull(payload []byte, maxChains int) [][]byte {
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
		level int
	}
	chains := map[string]*chain{}
	var order []string // declaration order
	var other []string // lines not in a per-chain bucket: -X and anything unexpected
	for line := range strings.Lines(natBlock) {
		switch {
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if _, ok := chains[name]; !ok {
				chains[name] = &chain{name: name, level: -1}
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
	// Chains that are deleted, or whose rules are not plain appends, stay in the last
	// restore with everything that is not a per-service chain.
	deleted := map[string]bool{}
	for _, line := range other {
		if strings.HasPrefix(line, "-X ") {
			deleted[strings.TrimSpace(line[3:])] = true
		}
	}
	var level func(c *chain, depth int) int
	level = func(c *chain, depth int) int {
		if c.level >= 0 || depth > 8 {
			return c.level
		}
		l := 0
		for _, target := range c.jumps {
			t, ok := chains[target]
			if !ok || !IsServiceChain(target) {
				continue
			}
			l = max(l, level(t, depth+1)+1)
		}
		c.level = l
		return l
	}
	// A per-service chain that jumps to a chain of the last restore could not be
	// written before it: keep the payload whole (Render never produces one).
	for _, c := range chains {
		if !IsServiceChain(c.name) || deleted[c.name] {
			continue
		}
		for _, target := range c.jumps {
			if t, ok := chains[target]; ok && !IsServiceChain(target) && (deleted[target] || jumpsToServiceChain(t.jumps)) {
				return [][]byte{payload}
			}
		}
	}
	targets := map[string]bool{} // chains per-service chains jump to
	for _, c := range chains {
		if IsServiceChain(c.name) {
			for _, target := range c.jumps {
				targets[target] = true
			}
		}
	}
	var first, last []*chain
	levels := map[int][]*chain{}
	maxLevel := 0
	for _, name := range order {
		c := chains[name]
		switch {
		case deleted[name]:
			last = append(last, c)
		case IsServiceChain(name):
			l := level(c, 0)
			if l < 0 { // a cycle or absurd depth: keep it with the last restore
				last = append(last, c)
				continue
			}
			levels[l] = append(levels[l], c)
			maxLevel = max(maxLevel, l)
		case targets[name] && !jumpsToServiceChain(c.jumps):
			first = append(first, c)
		default:
			last = append(last, c)
		}
	}
	write := func(out *bytes.Buffer, group []*chain) {
		for _, c := range group {
			out.WriteString(":" + c.name + " - [0:0]\n")
		}
		for _, c := range group {
			for _, r := range c.rules {
				out.WriteString(r)
			}
		}
	}
	var restores [][]byte
	flush := func(group []*chain) {
		if len(group) == 0 {
			return
		}
		var out bytes.Buffer
		out.WriteString("*nat\n")
		write(&out, group)
		out.WriteString("COMMIT\n")
		restores = append(restores, out.Bytes())
	}
	flush(first)
	for l := 0; l <= maxLevel; l++ {
		group := levels[l]
		for len(group) > 0 {
			n := min(maxChains, len(group))
			flush(group[:n])
			group = group[n:]
		}
	}
	var out bytes.Buffer
	out.WriteString(before)
	out.WriteString("*nat\n")
	write(&out, last)
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
