package ruleset

import (
	"slices"
	"sort"
)

// Ruleset is the iptables state of one address family: tables of chains of
// rules. A table exists once a payload has mentioned it, as a kernel loads a
// table module on first use. A Ruleset is not safe for concurrent use; the
// Fake in pkg/xtables/testing adds the locking.
type Ruleset struct {
	family Family
	tables map[string]*Table
}

// Table is one iptables table.
type Table struct {
	// Name is "filter", "nat", "mangle" or "raw".
	Name   string
	chains map[string]*Chain
}

// Chain is one chain of a table. Chains returned by accessors are shared
// with the Ruleset and must be treated as read-only.
type Chain struct {
	Name string
	// Builtin is true for the kernel's hook chains (PREROUTING, INPUT, ...).
	Builtin bool
	// Policy is ACCEPT or DROP for built-in chains and "-" for user chains.
	Policy string
	// Rules are in evaluation order.
	Rules []*Rule
}

// New returns an empty Ruleset for family.
func New(family Family) *Ruleset {
	return &Ruleset{family: family, tables: map[string]*Table{}}
}

// Family returns the ruleset's address family.
func (r *Ruleset) Family() Family { return r.family }

// Clone returns a deep copy of the ruleset's structure. Rules are immutable
// and shared.
func (r *Ruleset) Clone() *Ruleset {
	clone := New(r.family)
	for name, table := range r.tables {
		ct := &Table{Name: name, chains: make(map[string]*Chain, len(table.chains))}
		for chainName, chain := range table.chains {
			cc := *chain
			cc.Rules = slices.Clone(chain.Rules)
			ct.chains[chainName] = &cc
		}
		clone.tables[name] = ct
	}
	return clone
}

// TableNames returns the tables present, in Save order.
func (r *Ruleset) TableNames() []string {
	var names []string
	for _, name := range tableOrder {
		if r.tables[name] != nil {
			names = append(names, name)
		}
	}
	return names
}

// Chain returns the named chain, or nil when the table or chain is absent.
// The result is shared with the ruleset: do not modify it.
func (r *Ruleset) Chain(table, name string) *Chain {
	t := r.tables[table]
	if t == nil {
		return nil
	}
	return t.chains[name]
}

// ChainNames returns the chains of table in iptables-save order: built-in
// chains in hook order, then user chains sorted by name.
func (r *Ruleset) ChainNames(table string) []string {
	t := r.tables[table]
	if t == nil {
		return nil
	}
	return t.chainNames()
}

func (t *Table) chainNames() []string {
	names := BuiltinChains(t.Name)
	var user []string
	for name, chain := range t.chains {
		if !chain.Builtin {
			user = append(user, name)
		}
	}
	sort.Strings(user)
	return append(names, user...)
}

// Equal reports whether two rulesets have the same family and the same
// canonical Save text.
func (r *Ruleset) Equal(other *Ruleset) bool {
	return r.family == other.family && r.Save() == other.Save()
}

// table returns the named table, creating it with its built-in chains.
func (r *Ruleset) table(name string) *Table {
	if t := r.tables[name]; t != nil {
		return t
	}
	t := &Table{Name: name, chains: map[string]*Chain{}}
	for _, chain := range builtinChains[name] {
		t.chains[chain] = &Chain{Name: chain, Builtin: true, Policy: "ACCEPT"}
	}
	r.tables[name] = t
	return t
}
