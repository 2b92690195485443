package nftmodel

import (
	"fmt"
	"slices"
	"strings"
)

// Canonical prints the ruleset in a form where two rulesets that differ
// only in what nft does not promise to keep compare equal: tables, sets and
// chains sorted by name, set and map elements sorted. Rules keep their
// order inside each chain, which decides what a packet meets first. Two
// proxies whose tables print the same here program the same kernel state
// (`nft list table` lists elements in the kernel's hash order, and objects
// in the order they were created).
func Canonical(rs *Ruleset) string {
	var b strings.Builder
	tables := slices.Clone(rs.Tables)
	slices.SortFunc(tables, func(x, y *Table) int { return strings.Compare(x.String(), y.String()) })
	for _, t := range tables {
		fmt.Fprintf(&b, "table %s\n", t)
		if t.Comment != "" {
			fmt.Fprintf(&b, "  comment %q\n", t.Comment)
		}
		if len(t.Flags) > 0 {
			fmt.Fprintf(&b, "  flags %s\n", strings.Join(t.Flags, ","))
		}
		for _, name := range slices.Sorted(slices.Values(t.SetOrder)) {
			writeSet(&b, t.Sets[name])
		}
		for _, name := range slices.Sorted(slices.Values(t.ChainOrder)) {
			writeChain(&b, t.Chains[name])
		}
	}
	return b.String()
}

func writeSet(b *strings.Builder, s *Set) {
	kind := "set"
	if s.Map {
		kind = "map"
	}
	typ := strings.Join(s.KeyTypes, " . ")
	if s.Map {
		typ += " : " + s.DataType
	}
	fmt.Fprintf(b, "  %s %s type %s", kind, s.Name, typ)
	if len(s.Flags) > 0 {
		flags := slices.Sorted(slices.Values(s.Flags))
		fmt.Fprintf(b, " flags %s", strings.Join(flags, ","))
	}
	for _, property := range [][2]string{{"timeout", s.Timeout}, {"size", s.Size}} {
		if property[1] != "" {
			fmt.Fprintf(b, " %s %s", property[0], property[1])
		}
	}
	if s.Comment != "" {
		fmt.Fprintf(b, " comment %q", s.Comment)
	}
	b.WriteByte('\n')
	var elements []string
	for _, e := range s.Elements {
		elements = append(elements, e.Text)
	}
	slices.Sort(elements)
	for _, e := range elements {
		fmt.Fprintf(b, "    element %s\n", e)
	}
}

func writeChain(b *strings.Builder, c *Chain) {
	fmt.Fprintf(b, "  chain %s", c.Name)
	if c.Base != nil {
		fmt.Fprintf(b, " type %s hook %s priority %d policy %s", c.Base.Type, c.Base.Hook, c.Base.Priority, c.Base.Policy)
	}
	if c.Comment != "" {
		fmt.Fprintf(b, " comment %q", c.Comment)
	}
	b.WriteByte('\n')
	for _, r := range c.Rules {
		fmt.Fprintf(b, "    %s\n", r.Text)
	}
}
