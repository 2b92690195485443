package ruleset

import "strings"

// Save returns the ruleset as iptables-save would print it, without
// counters: tables in a fixed order (filter, nat, mangle, raw), each with its
// chain declarations (built-ins first, then user chains by name), its rules
// chain by chain, and COMMIT. Rules print as written, re-quoted canonically.
func (r *Ruleset) Save() string {
	var b strings.Builder
	for _, name := range r.TableNames() {
		r.saveTable(&b, name)
	}
	return b.String()
}

// SaveTable returns Save's text for one table, or "" when it is absent.
func (r *Ruleset) SaveTable(table string) string {
	if r.tables[table] == nil {
		return ""
	}
	var b strings.Builder
	r.saveTable(&b, table)
	return b.String()
}

func (r *Ruleset) saveTable(b *strings.Builder, name string) {
	t := r.tables[name]
	names := t.chainNames()
	b.WriteString("*" + name + "\n")
	for _, chain := range names {
		b.WriteString(":" + chain + " " + t.chains[chain].Policy + "\n")
	}
	for _, chain := range names {
		for _, rule := range t.chains[chain].Rules {
			b.WriteString("-A " + chain)
			if spec := rule.String(); spec != "" {
				b.WriteString(" " + spec)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("COMMIT\n")
}
