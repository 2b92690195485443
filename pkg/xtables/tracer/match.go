package tracer

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// matches evaluates a rule's matches in kernel order: the fixed header (-p,
// -s, -d, -i, -o), then each module as written, stopping at the first miss
// so a random match is only drawn when the kernel would draw it.
func (w *walker) matches(rule *ruleset.Rule) (bool, error) {
	pkt := &w.pkt
	if rule.Protocol != "" && rule.Protocol != "all" && (pkt.Proto == rule.Protocol) == rule.NegateProtocol {
		return false, nil
	}
	if m := rule.Source; m != nil && m.Prefix.Contains(pkt.Src) == m.Negate {
		return false, nil
	}
	if m := rule.Destination; m != nil && m.Prefix.Contains(pkt.Dst) == m.Negate {
		return false, nil
	}
	if m := rule.InIface; m != nil && !m.Matches(pkt.InIface) {
		return false, nil
	}
	if m := rule.OutIface; m != nil && !m.Matches(pkt.OutIface) {
		return false, nil
	}
	for _, match := range rule.Matches {
		ok, err := w.match(match)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (w *walker) match(match ruleset.Match) (bool, error) {
	pkt := &w.pkt
	switch m := match.(type) {
	case *ruleset.CommentMatch, *ruleset.NFAcctMatch:
		// A comment never filters; nfacct only counts.
		return true, nil
	case *ruleset.PortMatch:
		if m.DstPort != nil && m.DstPort.Contains(pkt.DstPort) == m.NegateDst {
			return false, nil
		}
		if m.SrcPort != nil && m.SrcPort.Contains(pkt.SrcPort) == m.NegateSrc {
			return false, nil
		}
		return true, nil
	case *ruleset.MultiportMatch:
		hit := false
		for _, pr := range m.Ports {
			hit = hit || (m.Direction != "src" && pr.Contains(pkt.DstPort)) ||
				(m.Direction != "dst" && pr.Contains(pkt.SrcPort))
		}
		return hit != m.Negate, nil
	case *ruleset.AddrTypeMatch:
		if m.SrcType != "" && w.hasAddrType(pkt.Src, m.SrcType) == m.NegateSrc {
			return false, nil
		}
		if m.DstType != "" && w.hasAddrType(pkt.Dst, m.DstType) == m.NegateDst {
			return false, nil
		}
		return true, nil
	case *ruleset.ConntrackMatch:
		hit := false
		for _, state := range m.States {
			// The first packet of a connection is NEW; DNAT is set once
			// a DNAT rule has translated it.
			hit = hit || state == "NEW" || (state == "DNAT" && w.dnatDone)
		}
		return hit != m.Negate, nil
	case *ruleset.MarkMatch:
		return (w.mark&m.Mask == m.Value) != m.Negate, nil
	case *ruleset.StatisticMatch:
		p := m.Probability
		if m.Mode == "nth" {
			p = 1 / float64(m.Every)
		}
		return w.decide(p) != m.Negate, nil
	case *ruleset.SetMatch:
		return w.matchSet(m)
	case *ruleset.RecentMatch:
		var hit bool
		switch m.Command {
		case ruleset.RecentSet:
			hit = true // records the source; always matches
		default:
			hit = w.opts.AffinityHit != "" && m.Name == w.opts.AffinityHit
		}
		return hit != m.Negate, nil
	}
	return false, fmt.Errorf("tracer does not support match %q", match.Module())
}

// hasAddrType reports whether addr has one of the comma-separated types.
func (w *walker) hasAddrType(addr netip.Addr, types string) bool {
	var actual string
	switch {
	case w.node.IsLocal(addr):
		actual = "LOCAL"
	case addr.IsMulticast():
		actual = "MULTICAST"
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		actual = "BROADCAST"
	default:
		actual = "UNICAST"
	}
	for _, t := range strings.Split(types, ",") {
		if t == actual {
			return true
		}
	}
	return false
}
