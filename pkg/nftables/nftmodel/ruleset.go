package nftmodel

import (
	"fmt"
	"slices"
)

// Ruleset is every table of a parsed text, in the order they first appear.
type Ruleset struct {
	Tables []*Table
}

// Table returns the table family/name, or nil.
func (rs *Ruleset) Table(family, name string) *Table {
	for _, t := range rs.Tables {
		if t.Family == family && t.Name == name {
			return t
		}
	}
	return nil
}

func (rs *Ruleset) ensureTable(family, name string) *Table {
	if t := rs.Table(family, name); t != nil {
		return t
	}
	t := &Table{Family: family, Name: name, Chains: map[string]*Chain{}, Sets: map[string]*Set{}, Counters: map[string]bool{}}
	rs.Tables = append(rs.Tables, t)
	return t
}

// Table is one nftables table.
type Table struct {
	// Family is "ip", "ip6" or "inet".
	Family, Name string
	Comment      string
	Flags        []string
	// Chains and Sets (maps included) by name; ChainOrder and SetOrder
	// keep the order they were declared in.
	Chains     map[string]*Chain
	ChainOrder []string
	Sets       map[string]*Set
	SetOrder   []string
	// Counters are the named counters ("counter NAME"), which a rule's
	// `counter name "NAME"` must find; their values are not modelled.
	Counters map[string]bool
}

func (t *Table) String() string { return t.Family + " " + t.Name }

func (t *Table) ensureChain(name string) *Chain {
	if c, ok := t.Chains[name]; ok {
		return c
	}
	c := &Chain{Name: name}
	t.Chains[name] = c
	t.ChainOrder = append(t.ChainOrder, name)
	return c
}

// Chain is a base or regular chain.
type Chain struct {
	Name    string
	Comment string
	// Base is set for a base chain (one attached to a hook).
	Base  *BaseChain
	Rules []*Rule
}

// BaseChain is what attaches a chain to a netfilter hook.
type BaseChain struct {
	// Type is "filter", "nat" or "route".
	Type string
	// Hook is "prerouting", "input", "forward", "output" or "postrouting".
	Hook string
	// Priority is the numeric priority; PriorityText as written
	// ("dstnat - 10").
	Priority     int
	PriorityText string
	// Policy is "accept" or "drop".
	Policy string
}

// Set is a named set, or a map when Map is true.
type Set struct {
	Name string
	Map  bool
	// KeyTypes are the data types of the key's components
	// ("ipv4_addr", "inet_proto", "inet_service", ...); DataType is a map's
	// value type ("verdict", or a concatenation written with " . ").
	KeyTypes []string
	DataType string
	Flags    []string
	Timeout  string
	Size     string
	Comment  string
	Elements []*Element
}

// Dynamic reports whether the kernel adds elements at run time (update @set).
func (s *Set) Dynamic() bool { return slices.Contains(s.Flags, "dynamic") }

// Element is a set or map element.
type Element struct {
	Key []Value
	// Verdict is a verdict map's value; Data another map's.
	Verdict *Verdict
	Data    []Value
	Comment string
	// Text is the key and value as written, for traces and diffs.
	Text string
}

// Rule is one rule: its statements, in order.
type Rule struct {
	// Text is the rule as written, tokens separated by single blanks.
	Text    string
	Comment string
	Line    int
	stmts   []*stmt
}

func (r *Rule) String() string { return r.Text }

// VerdictKind is what a verdict does.
type VerdictKind int

// The verdicts nft knows.
const (
	VerdictAccept VerdictKind = iota
	VerdictDrop
	VerdictReturn
	VerdictContinue
	VerdictJump
	VerdictGoto
)

// Verdict is a verdict statement or a verdict map's value.
type Verdict struct {
	Kind VerdictKind
	// Chain is the target of jump and goto.
	Chain string
}

func (v Verdict) String() string {
	switch v.Kind {
	case VerdictAccept:
		return "accept"
	case VerdictDrop:
		return "drop"
	case VerdictReturn:
		return "return"
	case VerdictContinue:
		return "continue"
	case VerdictJump:
		return "jump " + v.Chain
	}
	return "goto " + v.Chain
}

// validate checks every reference of every table resolves: jump and goto
// targets (in rules and verdict maps), named sets and named counters. The kernel refuses a
// ruleset that does not.
func (rs *Ruleset) validate() error {
	for _, t := range rs.Tables {
		checkChain := func(where, name string) error {
			if _, ok := t.Chains[name]; !ok {
				return fmt.Errorf("table %s: %s: jump or goto to missing chain %q", t, where, name)
			}
			return nil
		}
		for _, name := range t.SetOrder {
			s := t.Sets[name]
			for _, e := range s.Elements {
				if e.Verdict != nil && (e.Verdict.Kind == VerdictJump || e.Verdict.Kind == VerdictGoto) {
					if err := checkChain("map "+name, e.Verdict.Chain); err != nil {
						return err
					}
				}
			}
		}
		for _, name := range t.ChainOrder {
			for _, r := range t.Chains[name].Rules {
				for _, s := range r.stmts {
					for _, target := range s.chainRefs() {
						if err := checkChain(fmt.Sprintf("chain %s line %d", name, r.Line), target); err != nil {
							return err
						}
					}
					if s.counterRef != "" && !t.Counters[s.counterRef] {
						return fmt.Errorf("table %s: chain %s line %d: missing counter %q", t, name, r.Line, s.counterRef)
					}
					if s.setRef != "" {
						set, ok := t.Sets[s.setRef]
						if !ok {
							return fmt.Errorf("table %s: chain %s line %d: missing set %q", t, name, r.Line, s.setRef)
						}
						if err := s.checkSet(set); err != nil {
							return fmt.Errorf("table %s: chain %s line %d: %w", t, name, r.Line, err)
						}
					}
				}
			}
		}
	}
	return nil
}

// Referenced returns the chains that a rule or a verdict map element of the
// table jumps or goes to.
func (t *Table) Referenced() map[string]bool {
	refs := map[string]bool{}
	for _, name := range t.ChainOrder {
		for _, r := range t.Chains[name].Rules {
			for _, s := range r.stmts {
				for _, target := range s.chainRefs() {
					refs[target] = true
				}
			}
		}
	}
	for _, name := range t.SetOrder {
		for _, e := range t.Sets[name].Elements {
			if e.Verdict != nil && (e.Verdict.Kind == VerdictJump || e.Verdict.Kind == VerdictGoto) {
				refs[e.Verdict.Chain] = true
			}
		}
	}
	return refs
}

// DropIdleChains removes the regular chains that are empty and that nothing
// refers to, and returns their names as "family table chain". Proxies flush
// a chain no service needs and delete it a sync later (kube-proxy: at the
// first sync a second or more after), so two proxies at different moments
// of that cycle differ only in such chains.
func (rs *Ruleset) DropIdleChains() []string {
	var dropped []string
	for _, t := range rs.Tables {
		refs := t.Referenced()
		t.ChainOrder = slices.DeleteFunc(t.ChainOrder, func(name string) bool {
			c := t.Chains[name]
			if c.Base != nil || len(c.Rules) > 0 || refs[name] {
				return false
			}
			delete(t.Chains, name)
			dropped = append(dropped, t.String()+" "+name)
			return true
		})
	}
	return dropped
}
