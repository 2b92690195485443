package ruleset

import (
	"errors"
	"fmt"
)

// Apply runs an iptables-restore payload against the ruleset.
//
// With noflush (kube-proxy always passes --noflush), tables not in the
// payload and chains not declared are left alone, and ":CHAIN - [0:0]"
// creates a missing user chain or flushes an existing one. Without noflush,
// each table named by "*table" is first emptied: every chain flushed and every
// user chain deleted.
//
// Apply is strict and atomic: statements run in order against a copy, and the
// copy replaces the ruleset only if every statement and every COMMIT
// succeeded, as with iptables-nft-restore, which sends the whole payload in
// one netlink batch. Errors are *LineError values naming the line.
func (r *Ruleset) Apply(payload []byte, noflush bool) error {
	stmts, err := Parse(payload)
	if err != nil {
		return err
	}
	return r.ApplyStatements(stmts, noflush)
}

// ApplyStatements is Apply for statements already parsed.
func (r *Ruleset) ApplyStatements(stmts []Statement, noflush bool) error {
	work := r.Clone()
	declared := map[string]bool{}
	for _, st := range stmts {
		if err := work.exec(st, noflush, declared); err != nil {
			return &LineError{Line: st.Line, Text: st.Text, Err: err}
		}
	}
	*r = *work
	return nil
}

// exec runs one statement. declared tracks user chains declared in the
// current table block, so a second declaration can be refused when not
// noflush, as iptables-restore's create_chain would.
func (r *Ruleset) exec(st Statement, noflush bool, declared map[string]bool) error {
	if st.Op == OpTable {
		clear(declared)
		t := r.table(st.Table)
		if !noflush {
			for name, chain := range t.chains {
				if chain.Builtin {
					chain.Rules = nil
				} else {
					delete(t.chains, name)
				}
			}
		}
		return nil
	}
	t := r.table(st.Table)
	switch st.Op {
	case OpDeclare:
		if chain := t.chains[st.Chain]; chain != nil && chain.Builtin {
			// iptables-restore only sets a built-in chain's policy; it
			// never flushes it because of a declaration.
			if st.Policy != "-" {
				chain.Policy = st.Policy
			}
			return nil
		}
		if chain := t.chains[st.Chain]; chain != nil {
			if !noflush && declared[st.Chain] {
				return fmt.Errorf("chain %s declared twice", st.Chain)
			}
			chain.Rules = nil
		} else {
			t.chains[st.Chain] = &Chain{Name: st.Chain, Policy: "-"}
		}
		declared[st.Chain] = true
	case OpNewChain:
		if t.chains[st.Chain] != nil {
			return fmt.Errorf("chain %s already exists", st.Chain)
		}
		t.chains[st.Chain] = &Chain{Name: st.Chain, Policy: "-"}
	case OpAppend, OpInsert:
		chain, err := t.existing(st.Chain)
		if err != nil {
			return err
		}
		if err := r.checkRule(t, st.Rule); err != nil {
			return err
		}
		if st.Op == OpAppend {
			chain.Rules = append(chain.Rules, st.Rule)
			return nil
		}
		if st.Position > len(chain.Rules)+1 {
			return fmt.Errorf("index of insertion too big: %d (chain %s has %d rules)", st.Position, st.Chain, len(chain.Rules))
		}
		i := st.Position - 1
		chain.Rules = append(chain.Rules[:i], append([]*Rule{st.Rule}, chain.Rules[i:]...)...)
	case OpDelete:
		chain, err := t.existing(st.Chain)
		if err != nil {
			return err
		}
		return chain.delete(st)
	case OpFlush:
		if st.Chain == "" {
			for _, chain := range t.chains {
				chain.Rules = nil
			}
			return nil
		}
		chain, err := t.existing(st.Chain)
		if err != nil {
			return err
		}
		chain.Rules = nil
	case OpDeleteChain:
		if st.Chain != "" {
			return t.deleteChain(st.Chain)
		}
		for _, name := range t.chainNames() {
			if !t.chains[name].Builtin {
				if err := t.deleteChain(name); err != nil {
					return err
				}
			}
		}
	case OpCommit:
		return r.checkTable(t)
	default:
		return fmt.Errorf("unknown operation %v", st.Op)
	}
	return nil
}

func (t *Table) existing(name string) (*Chain, error) {
	chain := t.chains[name]
	if chain == nil {
		return nil, &ChainNotFoundError{Table: t.Name, Chain: name}
	}
	return chain, nil
}

func (c *Chain) delete(st Statement) error {
	if st.Rule == nil {
		if st.Position > len(c.Rules) {
			return fmt.Errorf("index of deletion too big: %d (chain %s has %d rules)", st.Position, c.Name, len(c.Rules))
		}
		c.Rules = append(c.Rules[:st.Position-1], c.Rules[st.Position:]...)
		return nil
	}
	key := st.Rule.key()
	for i, rule := range c.Rules {
		if rule.key() == key {
			c.Rules = append(c.Rules[:i], c.Rules[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("bad rule (does a matching rule exist in chain %s?)", c.Name)
}

// deleteChain is -X: the kernel refuses to delete a built-in chain, a chain
// with rules, or a chain another rule still jumps to.
func (t *Table) deleteChain(name string) error {
	chain, err := t.existing(name)
	if err != nil {
		return err
	}
	switch {
	case chain.Builtin:
		return fmt.Errorf("cannot delete built-in chain %s", name)
	case len(chain.Rules) > 0:
		return fmt.Errorf("cannot delete chain %s: it has %d rules", name, len(chain.Rules))
	}
	if refs := t.referrers(name); len(refs) > 0 {
		return fmt.Errorf("cannot delete chain %s: still referenced from %v", name, refs)
	}
	delete(t.chains, name)
	return nil
}

// referrers returns the chains (in save order) with a rule jumping to name.
func (t *Table) referrers(name string) []string {
	var refs []string
	for _, chainName := range t.chainNames() {
		for _, rule := range t.chains[chainName].Rules {
			if rule.Target.Chain == name {
				refs = append(refs, chainName)
				break
			}
		}
	}
	return refs
}

// targetTables are the tables a built-in target may be used in, from the
// kernel's xt_target registrations (.table = "nat" / "filter").
var targetTables = map[TargetKind]string{
	TargetDNAT:       TableNAT,
	TargetMasquerade: TableNAT,
	TargetReject:     TableFilter,
}

// checkRule validates a rule being added to table t.
func (r *Ruleset) checkRule(t *Table, rule *Rule) error {
	for _, m := range []*AddrMatch{rule.Source, rule.Destination} {
		if m != nil && !r.family.Contains(m.Prefix.Addr()) {
			return fmt.Errorf("address %s is not %s", m.Prefix, r.family)
		}
	}
	target := rule.Target
	if want, ok := targetTables[target.Kind]; ok && want != t.Name {
		return fmt.Errorf("target %s is only valid in table %s, not %s", target.Name, want, t.Name)
	}
	switch target.Kind {
	case TargetJump, TargetGoto:
		chain := t.chains[target.Chain]
		if chain == nil {
			return &ChainNotFoundError{Table: t.Name, Chain: target.Chain, Jump: true}
		}
		if chain.Builtin {
			return fmt.Errorf("cannot jump to built-in chain %s", target.Chain)
		}
	case TargetDNAT:
		if !r.family.Contains(target.ToAddr) {
			return fmt.Errorf("DNAT destination %s is not %s", target.ToAddr, r.family)
		}
	case TargetReject:
		if target.RejectWith != "" && !rejectTypes[r.family][target.RejectWith] {
			return fmt.Errorf("reject type %q is not valid for %s", target.RejectWith, r.family)
		}
	}
	return nil
}

// errLoop is returned when jumps form a cycle; the kernel refuses such a
// table with ELOOP.
var errLoop = errors.New("loop in chain jumps")
