package nftmodel

import (
	"fmt"
	"net/netip"
)

// runRule evaluates one rule. ends is true when the chain ends with f
// (flowContinue then means "return to the caller").
func (w *walker) runRule(t *Table, chain *Chain, rule *Rule, depth int) (f flow, ends bool, err error) {
	hit := Hit{Table: t.String(), Chain: chain.Name, Rule: rule}
	noted := false
	matched := func() {
		if !noted {
			noted = true
			w.note("%s/%s: %s", t, chain.Name, rule.Text)
			w.hits = append(w.hits, hit)
		}
	}
	for i, s := range rule.stmts {
		if i < len(rule.stmts)-1 && (s.kind == stmtVerdict || s.kind == stmtReject || s.kind == stmtVmap) {
			return 0, false, fmt.Errorf("statement after a verdict")
		}
		switch s.kind {
		case stmtMatch:
			ok, err := w.match(t, s)
			if err != nil || !ok {
				return 0, false, err
			}
		case stmtVmap:
			e, err := w.lookup(t, s)
			if err != nil || e == nil {
				return 0, false, err
			}
			hit.Element = e
			matched()
			return w.verdict(t, *e.Verdict, depth)
		case stmtVerdict:
			matched()
			return w.verdict(t, s.verdict, depth)
		case stmtReject:
			matched()
			if w.hook == "prerouting" || w.hook == "postrouting" {
				return 0, false, fmt.Errorf("reject in a %s chain", w.hook)
			}
			return flowReject, true, nil
		case stmtCounter:
		case stmtMarkSet:
			if len(s.expr) == 1 {
				w.mark = uint32(applyOp(uint64(w.mark), s.expr[0]))
			} else {
				w.mark = uint32(s.markConst)
			}
		case stmtUpdate:
			if len(s.expr) != 1 || (s.expr[0].sel.name != "ip saddr" && s.expr[0].sel.name != "ip6 saddr") {
				return 0, false, fmt.Errorf("update @%s: only the source address is modelled", s.setRef)
			}
			w.affinity = s.setRef
		case stmtMasquerade:
			if w.chainType != "nat" || (w.hook != "postrouting" && w.hook != "input") {
				return 0, false, fmt.Errorf("masquerade in a %s %s chain", w.chainType, w.hook)
			}
			matched()
			w.masquerade, w.snatDecided = true, true
			return flowStop, true, nil
		case stmtDNAT:
			if w.chainType != "nat" || (w.hook != "prerouting" && w.hook != "output") {
				return 0, false, fmt.Errorf("dnat in a %s %s chain", w.chainType, w.hook)
			}
			addr, port := s.dnatAddr, s.dnatPort
			if s.dnatMap {
				e, err := w.lookup(t, s)
				if err != nil {
					return 0, false, err
				}
				if e == nil {
					// nft drops a packet whose dnat map has no entry.
					matched()
					return flowDrop, true, nil
				}
				hit.Element = e
				addr = e.Data[0].Addr
				port = 0
				if len(e.Data) > 1 {
					port = int(e.Data[1].Num)
				}
			}
			if addr.Is4() != w.dst.Is4() {
				return 0, false, fmt.Errorf("dnat to %s on a packet of the other family", addr)
			}
			matched()
			if port == 0 {
				port = w.dport
			}
			w.dst, w.dport = addr, port
			w.endpoint = netip.AddrPortFrom(addr, uint16(port)).String()
			w.dnatDone, w.dnatDecided = true, true
			return flowStop, true, nil
		default:
			return 0, false, fmt.Errorf("statement kind %d not modelled", s.kind)
		}
	}
	matched()
	return flowContinue, false, nil
}

// verdict applies a verdict; see runRule for f and ends.
func (w *walker) verdict(t *Table, v Verdict, depth int) (flow, bool, error) {
	switch v.Kind {
	case VerdictAccept:
		return flowStop, true, nil
	case VerdictDrop:
		return flowDrop, true, nil
	case VerdictReturn:
		return flowContinue, true, nil
	case VerdictContinue:
		return flowContinue, false, nil
	}
	next, ok := t.Chains[v.Chain]
	if !ok {
		return 0, false, fmt.Errorf("%s to missing chain %s", v, v.Chain)
	}
	if next.Base != nil {
		return 0, false, fmt.Errorf("%s to base chain %s", v, v.Chain)
	}
	f, err := w.runChain(t, next, depth+1)
	if err != nil {
		return 0, false, err
	}
	if v.Kind == VerdictJump && f == flowContinue {
		// The jumped-to chain returned: go on with the next rule.
		return flowContinue, false, nil
	}
	// goto: when the target returns, this chain returns too.
	return f, true, nil
}

// match evaluates "expr [!=] operand".
func (w *walker) match(t *Table, s *stmt) (bool, error) {
	data, ok, err := w.eval(s.expr)
	if err != nil || !ok {
		return false, err
	}
	found, err := w.contains(t, s, data)
	if err != nil {
		return false, err
	}
	return found != s.negate, nil
}

// contains reports whether the statement's set (anonymous or named)
// holds data.
func (w *walker) contains(t *Table, s *stmt, data []datum) (bool, error) {
	if s.setRef == "" {
		for _, e := range s.elements {
			if tupleMatches(e.Key, data) {
				return true, nil
			}
		}
		return false, nil
	}
	set := t.Sets[s.setRef]
	if set.Dynamic() {
		// A dynamic set (session affinity) holds what update put there at
		// run time; the model's client is new unless the options say the
		// set knows it.
		return w.opts.AffinityHit == set.Name && len(data) == 1 && data[0].addr == w.pkt.Src, nil
	}
	for _, e := range set.Elements {
		if tupleMatches(e.Key, data) {
			return true, nil
		}
	}
	return false, nil
}

// lookup finds the map element for the statement's expression, or nil.
func (w *walker) lookup(t *Table, s *stmt) (*Element, error) {
	data, ok, err := w.eval(s.expr)
	if err != nil || !ok {
		return nil, err
	}
	elements := s.elements
	if s.setRef != "" {
		elements = t.Sets[s.setRef].Elements
	}
	for _, e := range elements {
		if tupleMatches(e.Key, data) {
			return e, nil
		}
	}
	return nil, nil
}

// eval computes the packet's value of each term. ok is false when a term
// does not apply to the packet (ip6 saddr on an IPv4 packet, tcp dport on
// UDP), which makes the statement not match, as in the kernel.
func (w *walker) eval(e expr) ([]datum, bool, error) {
	data := make([]datum, 0, len(e))
	for _, t := range e {
		d, ok, err := w.evalTerm(t)
		if err != nil || !ok {
			return nil, false, err
		}
		data = append(data, d)
	}
	return data, true, nil
}

func (w *walker) evalTerm(t term) (datum, bool, error) {
	switch t.sel.name {
	case "ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr":
		if (t.sel.typ == "ipv4_addr") != w.pkt.Src.Is4() {
			return datum{}, false, nil
		}
		if t.sel.name == "ip saddr" || t.sel.name == "ip6 saddr" {
			return datum{addr: w.pkt.Src}, true, nil
		}
		return datum{addr: w.dst}, true, nil
	case "meta l4proto":
		return datum{num: protocolNumbers[w.pkt.Proto]}, true, nil
	case "meta nfproto":
		if w.pkt.Src.Is4() {
			return datum{sym: "ipv4"}, true, nil
		}
		return datum{sym: "ipv6"}, true, nil
	case "th dport":
		return datum{num: uint64(w.dport)}, true, nil
	case "th sport":
		return datum{num: uint64(w.pkt.SrcPort)}, true, nil
	case "tcp dport", "udp dport", "sctp dport", "tcp sport", "udp sport", "sctp sport":
		proto := t.sel.name[:len(t.sel.name)-len(" dport")]
		if proto != w.pkt.Proto {
			return datum{}, false, nil
		}
		if t.sel.name[len(proto)+1:] == "sport" {
			return datum{num: uint64(w.pkt.SrcPort)}, true, nil
		}
		return datum{num: uint64(w.dport)}, true, nil
	case "meta mark", "mark":
		return datum{num: applyOp(uint64(w.mark), t)}, true, nil
	case "ct state":
		return datum{sym: "new"}, true, nil
	case "ct status":
		var status []string
		if w.dnatDone {
			status = append(status, "dnat")
		}
		if w.masquerade {
			status = append(status, "snat")
		}
		return datum{syms: append(status, "")}, true, nil
	case "fib saddr type":
		return datum{sym: w.addrType(w.pkt.Src)}, true, nil
	case "fib daddr type":
		return datum{sym: w.addrType(w.dst)}, true, nil
	case "meta iifname", "iifname":
		return datum{sym: w.pkt.InIface}, true, nil
	case "meta oifname", "oifname":
		if w.pkt.OutIface == "" {
			return datum{}, false, fmt.Errorf("%s: the packet's output interface is unknown (set Packet.OutIface)", t.sel.name)
		}
		return datum{sym: w.pkt.OutIface}, true, nil
	}
	if t.sel.mod > 0 {
		return datum{num: w.choose(t.sel.mod)}, true, nil
	}
	return datum{}, false, fmt.Errorf("selector %q not modelled", t.sel.name)
}

// addrType is what `fib … type` says of addr.
func (w *walker) addrType(addr netip.Addr) string {
	if w.node.IsLocal(addr) {
		return "local"
	}
	return "unicast"
}

// choose returns the next numgen value: from the recorded choices, else 0,
// and records the decision and its probability.
func (w *walker) choose(mod uint64) uint64 {
	var v uint64
	if i := len(w.decisions); i < len(w.choices) {
		v = w.choices[i]
	}
	w.decisions = append(w.decisions, v)
	w.mods = append(w.mods, mod)
	w.prob /= float64(mod)
	return v
}

func applyOp(v uint64, t term) uint64 {
	switch t.op {
	case "&":
		return v & t.operand
	case "|":
		return v | t.operand
	case "^":
		return v ^ t.operand
	}
	return v
}
