package nftmodel

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Canonical prints the ruleset in a form where two rulesets that differ
// only in what nft does not promise to keep compare equal: tables, sets and
// chains sorted by name, set and map elements sorted. Rules keep their
// order inside each chain, which decides what a packet meets first. The
// elements of dynamic sets are left out: the kernel adds them at run time. Two
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
		for _, name := range slices.Sorted(maps.Keys(t.Counters)) {
			fmt.Fprintf(&b, "  counter %s\n", name)
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
	for _, property := range [][2]string{{"timeout", normalDuration(s.Timeout)}, {"size", s.Size}} {
		if property[1] != "" {
			fmt.Fprintf(b, " %s %s", property[0], property[1])
		}
	}
	if s.Comment != "" {
		fmt.Fprintf(b, " comment %q", s.Comment)
	}
	b.WriteByte('\n')
	if s.Dynamic() {
		// A dynamic set's elements are what the datapath added (session
		// affinity), not what the proxy wrote.
		return
	}
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

// normalDuration writes an nft duration ("1m", "10800s", "3h") as whole
// seconds, since knftables writes seconds and nft lists larger units. A
// text it cannot read is returned as it is.
func normalDuration(text string) string {
	if text == "" {
		return ""
	}
	units := map[string]int64{"d": 86400000, "h": 3600000, "m": 60000, "s": 1000, "ms": 1}
	var total int64
	rest := text
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		scale, ok := units[rest[i:j]]
		if err != nil || !ok {
			return text
		}
		total += n * scale
		rest = rest[j:]
	}
	if total%1000 != 0 {
		return fmt.Sprintf("%dms", total)
	}
	return fmt.Sprintf("%ds", total/1000)
}
