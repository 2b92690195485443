package rulediff

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// State is one family's iptables tables as text: per table, each chain's rules in
// canonical form (see CanonicalRule), in evaluation order. Unlike ruleset.Ruleset it
// accepts any match or target, since a node's tables hold other programs' rules too.
type State struct {
	family ruleset.Family
	tables map[string]map[string][]string // table -> chain -> rules
}

// NewState returns an empty State for family.
func NewState(family ruleset.Family) *State {
	return &State{family: family, tables: map[string]map[string][]string{}}
}

// Clone returns a copy of s that shares nothing with it.
func (s *State) Clone() *State {
	c := NewState(s.family)
	for name, chains := range s.tables {
		cc := make(map[string][]string, len(chains))
		for chain, rules := range chains {
			cc[chain] = slices.Clone(rules)
		}
		c.tables[name] = cc
	}
	return c
}

// Rules returns a chain's canonical rules and whether the chain exists.
func (s *State) Rules(table, chain string) ([]string, bool) {
	rules, ok := s.tables[table][chain]
	return rules, ok
}

// Apply runs iptables-save output or an iptables-restore --noflush payload against s:
// "*table" and COMMIT, chain declarations (which create a user chain or flush it; a
// built-in chain's declaration only sets its policy), -A, -I [N], -D, -F, -N and -X.
// Comments and counters are ignored. It is not atomic: on error s is partly changed,
// so callers apply to a Clone.
func (s *State) Apply(payload []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	var table string // the table being read, "" outside one
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if err := s.applyLine(line, &table); err != nil {
			return fmt.Errorf("line %d: %q: %w", n, line, err)
		}
	}
	return sc.Err()
}

func (s *State) applyLine(line string, tableName *string) error {
	chains := s.tables[*tableName]
	switch {
	case line == "" || strings.HasPrefix(line, "#"):
		return nil
	case strings.HasPrefix(line, "*"):
		name := line[1:]
		if s.tables[name] == nil {
			s.tables[name] = map[string][]string{}
			for _, c := range ruleset.BuiltinChains(name) {
				s.tables[name][c] = nil
			}
		}
		*tableName = name
		return nil
	case line == "COMMIT":
		*tableName = ""
		return nil
	case chains == nil:
		return fmt.Errorf("outside a table")
	case strings.HasPrefix(line, ":"):
		name, _, _ := strings.Cut(line[1:], " ")
		if !ruleset.IsBuiltinChain(*tableName, name) {
			chains[name] = nil
		}
		return nil
	}
	op, rest, _ := strings.Cut(line, " ")
	chain, spec, _ := strings.Cut(rest, " ")
	rules, exists := chains[chain]
	switch op {
	case "-N":
		if exists {
			return fmt.Errorf("chain %s already exists", chain)
		}
		chains[chain] = nil
		return nil
	case "-X":
		if !exists {
			return fmt.Errorf("no chain %s", chain)
		}
		delete(chains, chain)
		return nil
	}
	if !exists {
		return fmt.Errorf("no chain %s", chain)
	}
	switch op {
	case "-F":
		chains[chain] = nil
		return nil
	case "-A", "-I", "-D":
	default:
		return fmt.Errorf("unsupported command %s", op)
	}
	pos := 1
	if op == "-I" {
		if first, after, ok := strings.Cut(spec, " "); ok {
			if _, err := fmt.Sscanf(first, "%d", &pos); err == nil {
				spec = after
			} else {
				pos = 1
			}
		}
	}
	rule := s.canonical(spec)
	switch op {
	case "-A":
		chains[chain] = append(rules, rule)
	case "-I":
		if pos < 1 || pos > len(rules)+1 {
			return fmt.Errorf("index %d out of range", pos)
		}
		chains[chain] = slices.Insert(rules, pos-1, rule)
	case "-D":
		i := slices.Index(rules, rule)
		if i < 0 {
			return fmt.Errorf("no such rule in %s", chain)
		}
		chains[chain] = slices.Delete(rules, i, i+1)
	}
	return nil
}

// EnsureChain creates a chain unless it exists, as xtables.Interface.EnsureChain.
func (s *State) EnsureChain(table, chain string) {
	if s.tables[table] == nil {
		s.tables[table] = map[string][]string{}
	}
	if _, ok := s.tables[table][chain]; !ok {
		s.tables[table][chain] = nil
	}
}

// EnsureRule inserts a rule at the top of a chain unless the chain holds it, as
// xtables.Interface.EnsureRule.
func (s *State) EnsureRule(table, chain string, args []string) {
	rule := s.canonical(ruleset.FormatArgs(args))
	s.EnsureChain(table, chain)
	rules := s.tables[table][chain]
	if !slices.Contains(rules, rule) {
		s.tables[table][chain] = slices.Insert(rules, 0, rule)
	}
}

// canonical is CanonicalRule, or for a rule it cannot read (another program's, in a
// syntax kube-proxy never writes) the arguments as written: both sides of a
// comparison read such a rule the same way.
func (s *State) canonical(spec string) string {
	if rule, err := CanonicalRule(spec, s.family); err == nil {
		return rule
	}
	return strings.Join(strings.Fields(spec), " ")
}

// ChainNames returns the names of a table's chains, sorted.
func (s *State) ChainNames(table string) []string {
	names := make([]string, 0, len(s.tables[table]))
	for name := range s.tables[table] {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
