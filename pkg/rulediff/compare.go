package rulediff

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// Input is what Compare needs for one IP family.
type Input struct {
	// Family is the family of Kernel and Payload.
	Family ruleset.Family
	// Kernel is iptables-save (or ip6tables-save) output of the tables to compare.
	Kernel []byte
	// Payload is the restore payload of a full sync rendered for this kernel (with its
	// nat chain names, so that stale service chains are deleted).
	Payload []byte
	// Hooks are the jumps from the built-in chains that a full sync ensures first.
	Hooks []xtables.Hook
	// EnsureChains are the chains a full sync creates when missing (the canaries), as
	// "table/CHAIN".
	EnsureChains []string
	// Owned reports whether a chain belongs to the proxy. Owned chains, and the chains
	// the payload declares, are compared whole; of the other chains only the rules
	// that jump to a compared chain or to a hook's target are.
	Owned func(table, chain string) bool
	// Shared names the chains that partial syncs edit in place, so that their rules
	// may be in another order than a full sync writes them. Every rule in them
	// matches a destination no other rule matches, so the order does not change
	// which packets any rule sees, and they are compared as sets, except a trailing
	// run of rules that must stay last (the node-ports jump).
	Shared []string
}

// lastRuleMarker is in the comment of a rule that must stay at the end of its chain.
const lastRuleMarker = "this must be the last rule in this chain"

// TableDiff is how one table differs.
type TableDiff struct {
	// Table is the table's name.
	Table string
	// Diff is a unified diff from the kernel's rules to those after a full sync, with
	// headers "--- kernel ip nat" and "+++ switchyard ip nat"; empty when in sync.
	Diff string
}

// Compare returns, per table, what a full sync would change in the part of the
// kernel's tables the proxy owns. It applies, to a copy of the kernel's state, what a
// full sync does: ensure the hooks and chains, then restore the payload with --noflush;
// then it compares the owned part of both, each rule in the form iptables-save prints
// (CanonicalRule). Tables in sync have an empty Diff.
func Compare(in Input) ([]TableDiff, error) {
	kernel := NewState(in.Family)
	if err := kernel.Apply(in.Kernel); err != nil {
		return nil, fmt.Errorf("reading the kernel's rules: %w", err)
	}
	want := kernel.Clone()
	hookTargets := map[string]bool{}
	for _, h := range in.Hooks {
		want.EnsureChain(string(h.Table), string(h.Target))
		want.EnsureRule(string(h.Table), string(h.Chain), h.Args)
		hookTargets[string(h.Table)+"/"+string(h.Target)] = true
	}
	for _, tc := range in.EnsureChains {
		table, chain, _ := strings.Cut(tc, "/")
		want.EnsureChain(table, chain)
	}
	if err := want.Apply(in.Payload); err != nil {
		return nil, fmt.Errorf("applying the full sync's payload: %w", err)
	}
	declared := declaredChains(in.Payload)
	compared := func(table, chain string) bool {
		return in.Owned(table, chain) || declared[table+"/"+chain]
	}
	family := "ip"
	if in.Family == ruleset.IPv6 {
		family = "ip6"
	}
	var out []TableDiff
	for _, table := range tableNames(kernel, want) {
		v := view{compared: compared, hookTargets: hookTargets, shared: in.Shared}
		a, b := v.lines(kernel, table), v.lines(want, table)
		diff, err := Unified("kernel "+family+" "+table, "switchyard "+family+" "+table, a, b)
		if err != nil {
			return nil, fmt.Errorf("diffing %s: %w", table, err)
		}
		out = append(out, TableDiff{Table: table, Diff: diff})
	}
	return out, nil
}

// Unified returns a unified diff, with three lines of context, from lines a (labelled
// from) to lines b (labelled to); each line ends in "\n". It is empty when they are
// equal.
func Unified(from, to string, a, b []string) (string, error) {
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: a, B: b, FromFile: from, ToFile: to, Context: 3})
}

// tableNames returns the tables present in either state, in iptables-save's order.
func tableNames(states ...*State) []string {
	var names []string
	for _, name := range ruleset.Tables() {
		for _, s := range states {
			if s.tables[name] != nil {
				names = append(names, name)
				break
			}
		}
	}
	return names
}

// declaredChains returns "table/CHAIN" for every chain a payload declares.
func declaredChains(payload []byte) map[string]bool {
	out := map[string]bool{}
	table := ""
	for _, line := range strings.Split(string(payload), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			out[table+"/"+name] = true
		}
	}
	return out
}

// view selects and orders the part of a table that Compare shows.
type view struct {
	compared    func(table, chain string) bool
	hookTargets map[string]bool
	shared      []string
}

// lines returns one table's owned part as text: the compared chains' declarations,
// the rules of other chains that jump into them (in their order), then each compared
// chain's rules.
func (v view) lines(s *State, table string) []string {
	chains := s.tables[table]
	var owned, others []string
	for name := range chains {
		if v.compared(table, name) {
			owned = append(owned, name)
		} else {
			others = append(others, name)
		}
	}
	slices.Sort(owned)
	slices.SortFunc(others, func(a, b string) int {
		ba, bb := ruleset.IsBuiltinChain(table, a), ruleset.IsBuiltinChain(table, b)
		switch {
		case ba && !bb:
			return -1
		case bb && !ba:
			return 1
		case ba && bb:
			order := ruleset.BuiltinChains(table)
			return slices.Index(order, a) - slices.Index(order, b)
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, name := range owned {
		out = append(out, ":"+name+"\n")
	}
	for _, name := range others {
		for _, rule := range chains[name] {
			if target := jumpTarget(rule); target != "" && (v.compared(table, target) || v.hookTargets[table+"/"+target]) {
				out = append(out, "-A "+name+" "+rule+"\n")
			}
		}
	}
	for _, name := range owned {
		rules := chains[name]
		if slices.Contains(v.shared, name) {
			rules = setOrder(rules)
		}
		for _, rule := range rules {
			out = append(out, "-A "+name+" "+rule+"\n")
		}
	}
	return out
}

// setOrder sorts a shared chain's rules, keeping the trailing run of rules that must
// stay last in place after them: a node-ports jump moved into the middle of
// KUBE-SERVICES is a difference, service rules in another order are not.
func setOrder(rules []string) []string {
	tail := len(rules)
	for tail > 0 && strings.Contains(rules[tail-1], lastRuleMarker) {
		tail--
	}
	out := slices.Clone(rules)
	slices.Sort(out[:tail])
	return out
}

// jumpTarget returns the chain a canonical rule jumps or goes to, or "".
func jumpTarget(rule string) string {
	fields := strings.Fields(rule)
	for i := len(fields) - 2; i >= 0; i-- {
		if fields[i] == "-j" || fields[i] == "-g" {
			return fields[i+1]
		}
	}
	return ""
}
