package iptables

import (
	"bytes"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// foldedHooks is what a full sync's payload carries so that the hooks and the canary
// chains exist after it, decided from the kernel's tables as one iptables-save each
// read them (planHooks). kube-proxy ensures each hook at every full sync with its own
// processes (iptables -N, iptables -C, then iptables -I CHAIN 1), as Switchyard did:
// 28 processes, 2–3 s of a full sync at 10k services on a busy node.
//
// A restore cannot insert a rule only when it is missing, so the check is done on
// the save, and the payload inserts, at the top of its built-in chain, each hook the
// chain does not hold, in the order EnsureHooks would: the chains end up as
// kube-proxy's would. The canary chains are declared empty in every payload:
// declaring an existing empty chain changes nothing, and this saves checking them.
type foldedHooks struct {
	// declare lists, per table, hook targets that neither the table nor the render
	// declares: kubelet's KUBE-FIREWALL on a node without kubelet. A chain that exists
	// is never declared, since declaring flushes it.
	declare map[string][]string
	// inserts lists, per table, the "-I CHAIN 1 ..." lines of the missing hooks.
	inserts map[string][]string
}

// savedTable is what planHooks needs of one table's iptables-save output.
type savedTable struct {
	// chains are the chain names, in order.
	chains []string
	// builtinRules holds the rules of the built-in chains, as "CHAIN" → argument lists.
	builtinRules map[string][][]string
}

// scanLine adds one line of iptables-save output.
func (t *savedTable) scanLine(line []byte) {
	switch {
	case len(line) > 1 && line[0] == ':':
		if i := bytes.IndexByte(line, ' '); i > 1 {
			t.chains = append(t.chains, string(line[1:i]))
		}
	case bytes.HasPrefix(line, []byte("-A ")):
		chain, rest, _ := bytes.Cut(bytes.TrimRight(line[3:], "\n"), []byte(" "))
		if !isBuiltinChain(string(chain)) {
			return
		}
		if t.builtinRules == nil {
			t.builtinRules = map[string][][]string{}
		}
		t.builtinRules[string(chain)] = append(t.builtinRules[string(chain)], splitSaveArgs(string(rest)))
	}
}

func isBuiltinChain(chain string) bool {
	switch xtables.Chain(chain) {
	case xtables.ChainPrerouting, xtables.ChainInput, xtables.ChainForward, xtables.ChainOutput, xtables.ChainPostrouting:
		return true
	}
	return false
}

// splitSaveArgs splits a rule as iptables-save prints it into its arguments: words,
// or double-quoted strings (comments with spaces) with the quotes and their
// backslash escapes removed.
func splitSaveArgs(rule string) []string {
	var args []string
	var word strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(rule); i++ {
		c := rule[i]
		switch {
		case quoted && c == '\\' && i+1 < len(rule):
			i++
			word.WriteByte(rule[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, word.String())
	}
	return args
}

// planHooks decides what a full payload must add for hooks, given the filter and nat
// tables as saved before the sync and whether the render declares a chain itself.
func planHooks(hooks []xtables.Hook, tables map[string]*savedTable, renderDeclares func(table, chain string) bool) *foldedHooks {
	h := &foldedHooks{declare: map[string][]string{}, inserts: map[string][]string{}}
	for _, hook := range hooks {
		table, chain, target := string(hook.Table), string(hook.Chain), string(hook.Target)
		saved := tables[table]
		if saved == nil {
			saved = &savedTable{}
		}
		if !renderDeclares(table, target) && !contains(saved.chains, target) && !contains(h.declare[table], target) {
			h.declare[table] = append(h.declare[table], target)
		}
		if holdsRule(saved.builtinRules[chain], hook.Args) {
			continue
		}
		h.inserts[table] = append(h.inserts[table], "-I "+chain+" 1 "+joinRestoreArgs(hook.Args))
		// Inserted once: a second hook with the same rule would find it.
		if saved.builtinRules == nil {
			saved.builtinRules = map[string][][]string{}
		}
		saved.builtinRules[chain] = append(saved.builtinRules[chain], hook.Args)
		tables[table] = saved
	}
	return h
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// holdsRule reports whether rules holds one rule with exactly args, which is what
// `iptables -C` checks.
func holdsRule(rules [][]string, args []string) bool {
	for _, r := range rules {
		if len(r) == len(args) {
			same := true
			for i := range r {
				if r[i] != args[i] {
					same = false
					break
				}
			}
			if same {
				return true
			}
		}
	}
	return false
}

// joinRestoreArgs joins arguments into a restore line, quoting those with spaces as
// iptables-save does.
func joinRestoreArgs(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"") {
			a = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}

// renderDeclares reports whether a full render for cfg declares chain in table: the
// hook targets it writes itself.
func (c *Config) renderDeclares(table, chain string) bool {
	switch table {
	case "filter":
		switch chain {
		case ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall:
			return true
		case ChainKubeletFirewall:
			return c.localhostFirewall()
		}
	case "nat":
		switch chain {
		case ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq:
			return true
		}
	}
	return false
}

// writeCanaries writes, for each table, a block that declares the canary chain.
func (h *foldedHooks) writeCanaries(out *bytes.Buffer, tables ...string) {
	if h == nil {
		return
	}
	for _, table := range tables {
		out.WriteString("*" + table + "\n")
		writeDecl(out, canary)
		out.WriteString("COMMIT\n")
	}
}

// writeCanaryDecl writes the canary's declaration, inside a block.
func (h *foldedHooks) writeCanaryDecl(out *bytes.Buffer) {
	if h != nil {
		writeDecl(out, canary)
	}
}

// writeDecls writes the declarations of missing hook targets in table.
func (h *foldedHooks) writeDecls(out *bytes.Buffer, table string) {
	if h == nil {
		return
	}
	for _, c := range h.declare[table] {
		writeDecl(out, c)
	}
}

// writeInserts writes the missing hooks of table.
func (h *foldedHooks) writeInserts(out *bytes.Buffer, table string) {
	if h == nil {
		return
	}
	for _, line := range h.inserts[table] {
		out.WriteString(line)
		out.WriteByte('\n')
	}
}

// writeHooked writes a whole table block as writeTo does, with the canary, the
// missing hook targets and the missing hooks of h.
func (w *tableWriter) writeHooked(out *bytes.Buffer, table string, h *foldedHooks) {
	out.WriteString("*")
	out.WriteString(table)
	out.WriteByte('\n')
	out.Write(w.decls.Bytes())
	h.writeCanaryDecl(out)
	h.writeDecls(out, table)
	out.Write(w.rules.Bytes())
	h.writeInserts(out, table)
	out.Write(w.deletes.Bytes())
	out.WriteString("COMMIT\n")
}
