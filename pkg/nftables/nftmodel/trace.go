package nftmodel

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// maxDepth bounds jump nesting; the kernel refuses loops.
const maxDepth = 64

// Trace follows pkt through the base chains of rs that see its family (the
// ip or ip6 tables, and inet ones) in hook and priority order and returns
// every way it can end. Each `numgen random mod N` is explored N ways, each
// with probability 1/N.
func Trace(rs *Ruleset, node Node, pkt Packet, opts Options) (Result, error) {
	if !pkt.Src.IsValid() || !pkt.Dst.IsValid() || pkt.Src.Is4() != pkt.Dst.Is4() {
		return Result{}, fmt.Errorf("packet %s: source and destination of one family are required", pkt)
	}
	if _, ok := protocolNumbers[pkt.Proto]; !ok {
		return Result{}, fmt.Errorf("packet %s: unknown protocol", pkt)
	}
	limit := opts.MaxOutcomes
	if limit <= 0 {
		limit = 4096
	}
	result := Result{Packet: pkt}
	// Depth-first over numgen choices: a run takes the recorded choices,
	// then 0 for every new numgen; each other value of a new one is
	// queued.
	pending := [][]uint64{nil}
	for len(pending) > 0 {
		if len(result.Outcomes) >= limit {
			return Result{}, fmt.Errorf("packet %s: more than %d outcomes", pkt, limit)
		}
		choices := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		w := newWalker(rs, node, pkt, opts, choices)
		outcome, err := w.run()
		if err != nil {
			return Result{}, fmt.Errorf("packet %s: %w", pkt, err)
		}
		result.Outcomes = append(result.Outcomes, outcome)
		for i := len(choices); i < len(w.decisions); i++ {
			for alt := w.mods[i] - 1; alt >= 1; alt-- {
				pending = append(pending, append(slices.Clone(w.decisions[:i]), alt))
			}
		}
	}
	sort.SliceStable(result.Outcomes, func(i, j int) bool {
		return result.Outcomes[i].Endpoint < result.Outcomes[j].Endpoint
	})
	for _, o := range result.Outcomes {
		if o.Fate != Accept {
			continue
		}
		result.Masquerade = result.Masquerade || o.Masquerade
		if o.Endpoint != "" && !slices.Contains(result.Endpoints, o.Endpoint) {
			result.Endpoints = append(result.Endpoints, o.Endpoint)
		}
	}
	sort.Strings(result.Endpoints)
	return result, nil
}

// baseChain is a base chain with its table.
type baseChain struct {
	table *Table
	chain *Chain
}

// flow is what a chain walk tells its caller.
type flow int

const (
	flowContinue flow = iota // fell off the end, or return
	flowStop                 // accept, dnat, masquerade: this base chain is done
	flowDrop
	flowReject
)

// walker is one deterministic pass: numgen answers from choices, then 0.
type walker struct {
	rs     *Ruleset
	node   Node
	opts   Options
	pkt    Packet
	family string

	dst         netip.Addr
	dport       int
	mark        uint32
	endpoint    string
	dnatDecided bool
	snatDecided bool
	dnatDone    bool
	masquerade  bool
	affinity    string
	// hook and chainType are those of the base chain being walked.
	hook, chainType string
	trace           []string
	hits            []Hit

	choices   []uint64
	decisions []uint64
	mods      []uint64
	prob      float64
}

func newWalker(rs *Ruleset, node Node, pkt Packet, opts Options, choices []uint64) *walker {
	family := "ip"
	if pkt.Dst.Is6() {
		family = "ip6"
	}
	return &walker{rs: rs, node: node, opts: opts, pkt: pkt, family: family,
		dst: pkt.Dst, dport: pkt.DstPort, choices: choices, prob: 1}
}

func (w *walker) run() (Outcome, error) {
	var path []string
	if w.pkt.Origin == FromLocalProcess {
		path = []string{"output", "postrouting"}
	} else {
		path = []string{"prerouting"}
	}
	fate, err := w.runHooks(path)
	if err != nil || fate != Accept {
		return w.outcome(fate), err
	}
	local := w.node.IsLocal(w.dst)
	switch {
	case w.pkt.Origin == FromPodOrExternal && local:
		path = []string{"input"}
	case w.pkt.Origin == FromPodOrExternal:
		path = []string{"forward", "postrouting"}
	case local:
		// A locally sent packet to a local address loops back through
		// lo: prerouting and input again, but NAT was decided on the
		// way out, so no nat chain runs (the kernel's nf_nat_inet_fn
		// skips a manip already initialized).
		path = []string{"prerouting", "input"}
	default:
		path = nil
	}
	fate, err = w.runHooks(path)
	return w.outcome(fate), err
}

func (w *walker) outcome(fate Fate) Outcome {
	return Outcome{
		Fate:        fate,
		Endpoint:    w.endpoint,
		Dst:         netip.AddrPortFrom(w.dst, uint16(w.dport)),
		Local:       w.node.IsLocal(w.dst),
		Masquerade:  w.masquerade,
		Mark:        w.mark,
		Affinity:    w.affinity,
		Probability: w.prob,
		Trace:       w.trace,
		Hits:        w.hits,
	}
}

// chainsAt returns the base chains registered at hook for the packet's
// family, by priority (ties keep table order, as nft registers them).
func (w *walker) chainsAt(hook string) []baseChain {
	var chains []baseChain
	for _, t := range w.rs.Tables {
		if t.Family != w.family && t.Family != "inet" {
			continue
		}
		for _, name := range t.ChainOrder {
			c := t.Chains[name]
			if c.Base != nil && c.Base.Hook == hook {
				chains = append(chains, baseChain{t, c})
			}
		}
	}
	sort.SliceStable(chains, func(i, j int) bool { return chains[i].chain.Base.Priority < chains[j].chain.Base.Priority })
	return chains
}

// runHooks walks the base chains of each hook in order until one drops or
// rejects.
func (w *walker) runHooks(path []string) (Fate, error) {
	for _, hook := range path {
		for _, bc := range w.chainsAt(hook) {
			base := bc.chain.Base
			if base.Type == "nat" && w.natDecided(hook) {
				continue
			}
			w.hook, w.chainType = hook, base.Type
			f, err := w.runChain(bc.table, bc.chain, 0)
			if err != nil {
				return Accept, err
			}
			if f == flowContinue {
				w.note("%s/%s: policy %s", bc.table, bc.chain.Name, base.Policy)
				w.hits = append(w.hits, Hit{Table: bc.table.String(), Chain: bc.chain.Name, Policy: base.Policy})
				if base.Policy == "drop" {
					f = flowDrop
				}
			}
			switch f {
			case flowDrop:
				return Drop, nil
			case flowReject:
				return Reject, nil
			}
		}
		// Once a hook's nat chains ran, its manip is decided: the kernel
		// binds a null NAT if none of them did (nf_nat_alloc_null_binding).
		switch hook {
		case "prerouting", "output":
			w.dnatDecided = true
		case "postrouting", "input":
			w.snatDecided = true
		}
	}
	return Accept, nil
}

func (w *walker) natDecided(hook string) bool {
	if hook == "prerouting" || hook == "output" {
		return w.dnatDecided
	}
	return w.snatDecided
}

func (w *walker) note(format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf(format, args...))
}

// runChain walks a chain's rules; flowContinue means it fell off the end
// or returned, so its caller goes on.
func (w *walker) runChain(t *Table, chain *Chain, depth int) (flow, error) {
	if depth > maxDepth {
		return flowContinue, fmt.Errorf("jumps nested deeper than %d at %s/%s", maxDepth, t, chain.Name)
	}
	for _, rule := range chain.Rules {
		f, ends, err := w.runRule(t, chain, rule, depth)
		if err != nil {
			return flowContinue, fmt.Errorf("%s/%s line %d: %w", t, chain.Name, rule.Line, err)
		}
		if ends {
			return f, nil
		}
	}
	return flowContinue, nil
}
