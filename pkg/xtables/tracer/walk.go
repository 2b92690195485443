package tracer

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// maxDepth bounds jump nesting; the kernel refuses loops, and Apply does
// too, so hitting it means a ruleset built some other way.
const maxDepth = 64

// hook is one table's built-in chain on a packet's path.
type hook struct{ table, chain string }

// Trace follows pkt through rs and returns every way it can end.
func Trace(rs *ruleset.Ruleset, node Node, pkt Packet, opts Options) (Result, error) {
	if !pkt.Src.IsValid() || !pkt.Dst.IsValid() {
		return Result{}, fmt.Errorf("packet %s: source and destination are required", pkt)
	}
	if !rs.Family().Contains(pkt.Src) || !rs.Family().Contains(pkt.Dst) {
		return Result{}, fmt.Errorf("packet %s is not %s", pkt, rs.Family())
	}
	limit := opts.MaxOutcomes
	if limit <= 0 {
		limit = 4096
	}
	result := Result{Packet: pkt}
	// Depth-first over random choices: each run takes the recorded
	// choices, then answers "no" to every new random match; each new
	// "no" is queued to be tried again as "yes".
	pending := [][]bool{nil}
	for len(pending) > 0 {
		if len(result.Outcomes) >= limit {
			return Result{}, fmt.Errorf("packet %s: more than %d outcomes", pkt, limit)
		}
		choices := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		w := &walker{rs: rs, node: node, opts: opts, pkt: pkt, choices: choices, prob: 1}
		outcome, err := w.run()
		if err != nil {
			return Result{}, fmt.Errorf("packet %s: %w", pkt, err)
		}
		result.Outcomes = append(result.Outcomes, outcome)
		for i := len(choices); i < len(w.decisions); i++ {
			pending = append(pending, append(slices.Clone(w.decisions[:i]), true))
		}
	}
	sort.SliceStable(result.Outcomes, func(i, j int) bool {
		return result.Outcomes[i].Endpoint < result.Outcomes[j].Endpoint
	})
	seen := map[string]bool{}
	for _, o := range result.Outcomes {
		if o.Verdict != Accept {
			continue
		}
		result.Masquerade = result.Masquerade || o.Masquerade
		if o.Endpoint != "" && !seen[o.Endpoint] {
			seen[o.Endpoint] = true
			result.Endpoints = append(result.Endpoints, o.Endpoint)
		}
	}
	sort.Strings(result.Endpoints)
	return result, nil
}

// flow is what a chain walk tells its caller.
type flow int

const (
	flowContinue flow = iota // fell off the end or RETURN: caller goes on
	flowStop                 // ACCEPT, DNAT, MASQUERADE: this table is done
	flowDrop
	flowReject
)

// walker is one deterministic pass: random matches answer from choices,
// then "no".
type walker struct {
	rs   *ruleset.Ruleset
	node Node
	opts Options
	pkt  Packet

	mark       uint32
	endpoint   string
	dnatDone   bool
	masquerade bool
	trace      []string
	hits       []Hit

	choices   []bool
	decisions []bool
	prob      float64
}

func (w *walker) run() (Outcome, error) {
	if w.opts.IPVS != nil {
		return w.runIPVS()
	}
	var path []hook
	if w.pkt.Origin == FromLocalProcess {
		path = []hook{{"raw", "OUTPUT"}, {"mangle", "OUTPUT"}, {"nat", "OUTPUT"}, {"filter", "OUTPUT"},
			{"mangle", "POSTROUTING"}, {"nat", "POSTROUTING"}}
	} else {
		path = []hook{{"raw", "PREROUTING"}, {"mangle", "PREROUTING"}, {"nat", "PREROUTING"}}
	}
	verdict, err := w.runHooks(path)
	if err != nil || verdict != Accept {
		return w.outcome(verdict), err
	}
	local := w.node.IsLocal(w.pkt.Dst)
	switch {
	case w.pkt.Origin == FromPodOrExternal && local:
		path = []hook{{"mangle", "INPUT"}, {"filter", "INPUT"}, {"nat", "INPUT"}}
	case w.pkt.Origin == FromPodOrExternal:
		path = []hook{{"mangle", "FORWARD"}, {"filter", "FORWARD"}, {"mangle", "POSTROUTING"}, {"nat", "POSTROUTING"}}
	case local:
		// A locally sent packet to a local address loops back through
		// lo and is filtered again on input; NAT was already decided
		// on the way out, so the nat table is not consulted.
		path = []hook{{"raw", "PREROUTING"}, {"mangle", "PREROUTING"}, {"mangle", "INPUT"}, {"filter", "INPUT"}}
	default:
		path = nil
	}
	verdict, err = w.runHooks(path)
	return w.outcome(verdict), err
}

func (w *walker) outcome(verdict Verdict) Outcome {
	return Outcome{
		Verdict:     verdict,
		Endpoint:    w.endpoint,
		Dst:         netip.AddrPortFrom(w.pkt.Dst, uint16(w.pkt.DstPort)),
		Local:       w.node.IsLocal(w.pkt.Dst),
		Masquerade:  w.masquerade,
		Mark:        w.mark,
		Probability: w.prob,
		Trace:       w.trace,
		Hits:        w.hits,
	}
}

// runHooks walks the built-in chains in order until one drops or rejects.
func (w *walker) runHooks(path []hook) (Verdict, error) {
	for _, h := range path {
		chain := w.rs.Chain(h.table, h.chain)
		if chain == nil {
			continue // table not loaded: nothing to do
		}
		f, err := w.runChain(h.table, chain, 0)
		if err != nil {
			return Accept, err
		}
		if f == flowContinue {
			w.note("%s/%s: policy %s", h.table, h.chain, chain.Policy)
			w.hits = append(w.hits, Hit{Table: h.table, Chain: h.chain, Policy: chain.Policy})
			if chain.Policy == "DROP" {
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
	return Accept, nil
}

func (w *walker) note(format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf(format, args...))
}

func (w *walker) runChain(table string, chain *ruleset.Chain, depth int) (flow, error) {
	if depth > maxDepth {
		return flowContinue, fmt.Errorf("jumps nested deeper than %d at %s/%s", maxDepth, table, chain.Name)
	}
	for i, rule := range chain.Rules {
		ok, err := w.matches(rule)
		if err != nil {
			return flowContinue, fmt.Errorf("%s/%s rule %d: %w", table, chain.Name, i+1, err)
		}
		if !ok {
			continue
		}
		w.note("%s/%s: -A %s %s", table, chain.Name, chain.Name, rule)
		w.hits = append(w.hits, Hit{Table: table, Chain: chain.Name, Rule: rule})
		target := &rule.Target
		switch target.Kind {
		case ruleset.TargetNone:
		case ruleset.TargetJump, ruleset.TargetGoto:
			next := w.rs.Chain(table, target.Chain)
			if next == nil {
				return flowContinue, fmt.Errorf("%s/%s: jump to missing chain %s", table, chain.Name, target.Chain)
			}
			f, err := w.runChain(table, next, depth+1)
			if err != nil || f != flowContinue || target.Kind == ruleset.TargetGoto {
				return f, err
			}
		case ruleset.TargetAccept:
			return flowStop, nil
		case ruleset.TargetDrop:
			return flowDrop, nil
		case ruleset.TargetReject:
			return flowReject, nil
		case ruleset.TargetReturn:
			return flowContinue, nil
		case ruleset.TargetDNAT:
			w.pkt.Dst = target.ToAddr
			if target.ToPort != 0 {
				w.pkt.DstPort = target.ToPort
			}
			w.dnatDone = true
			w.endpoint = netip.AddrPortFrom(w.pkt.Dst, uint16(w.pkt.DstPort)).String()
			return flowStop, nil
		case ruleset.TargetMasquerade:
			w.masquerade = true
			return flowStop, nil
		case ruleset.TargetMark:
			w.mark = target.Apply(w.mark)
		default:
			return flowContinue, fmt.Errorf("%s/%s: unsupported target %s", table, chain.Name, target.Name)
		}
	}
	return flowContinue, nil
}

// decide answers a random match that hits with probability p.
func (w *walker) decide(p float64) bool {
	switch {
	case p >= 1:
		return true
	case p <= 0:
		return false
	}
	hit := false
	if n := len(w.decisions); n < len(w.choices) {
		hit = w.choices[n]
	}
	w.decisions = append(w.decisions, hit)
	if hit {
		w.prob *= p
	} else {
		w.prob *= 1 - p
	}
	return hit
}

// runIPVS follows a packet to a virtual server: the hooks before IPVS, the
// virtual server's DNAT to its real server, then the way out, where the nat
// table decides masquerading. The IPVS hooks run in LOCAL_IN after filter (at
// priority NF_IP_PRI_NAT_SRC-2) and in LOCAL_OUT after nat (NF_IP_PRI_NAT_DST+1).
func (w *walker) runIPVS() (Outcome, error) {
	var before []hook
	if w.pkt.Origin == FromLocalProcess {
		before = []hook{{"raw", "OUTPUT"}, {"mangle", "OUTPUT"}, {"nat", "OUTPUT"}}
	} else {
		before = []hook{{"raw", "PREROUTING"}, {"mangle", "PREROUTING"}, {"nat", "PREROUTING"},
			{"mangle", "INPUT"}, {"filter", "INPUT"}}
	}
	verdict, err := w.runHooks(before)
	if err != nil || verdict != Accept {
		return w.outcome(verdict), err
	}
	vs := w.opts.IPVS
	if !vs.Dest.IsValid() {
		w.note("ipvs %s: no real servers; the kernel answers ICMP port unreachable", vs.VirtualServer)
		w.hits = append(w.hits, Hit{Table: "ipvs", Chain: vs.VirtualServer, IPVS: vs})
		return w.outcome(Reject), nil
	}
	w.note("ipvs %s: real server %s", vs.VirtualServer, vs.Dest)
	w.hits = append(w.hits, Hit{Table: "ipvs", Chain: vs.VirtualServer, IPVS: vs})
	w.pkt.Dst, w.pkt.DstPort = vs.Dest.Addr(), int(vs.Dest.Port())
	w.dnatDone = true
	w.endpoint = vs.Dest.String()
	after := []hook{{"mangle", "POSTROUTING"}, {"nat", "POSTROUTING"}}
	if w.pkt.Origin == FromLocalProcess {
		after = append([]hook{{"filter", "OUTPUT"}}, after...)
	}
	verdict, err = w.runHooks(after)
	return w.outcome(verdict), err
}
