package explain

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// RulesFromPayload builds the tables a node would hold after the daemon's
// first sync: the hook rules it ensures in the built-in chains (each inserted
// at the top, in order, as xtables.EnsureHooks does), then the restore
// payload applied with --noflush. This is how `switchyard explain -f` traces a
// dry-run without a kernel.
func RulesFromPayload(family ruleset.Family, hooks []xtables.Hook, payload []byte) (*ruleset.Ruleset, error) {
	rs := ruleset.New(family)
	for _, h := range hooks {
		hookPayload := fmt.Sprintf("*%s\n:%s - [0:0]\n-I %s 1 %s\nCOMMIT\n", h.Table, h.Target, h.Chain, ruleset.FormatArgs(h.Args))
		if err := rs.Apply([]byte(hookPayload), true); err != nil {
			return nil, fmt.Errorf("hook %s/%s -> %s: %w", h.Table, h.Chain, h.Target, err)
		}
	}
	if err := rs.Apply(payload, true); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return rs, nil
}

// RulesFromSave parses an iptables-save (or ip6tables-save) dump, as read
// from a live node.
func RulesFromSave(family ruleset.Family, dump []byte) (*ruleset.Ruleset, error) {
	rs := ruleset.New(family)
	if err := rs.Apply(dump, false); err != nil {
		return nil, fmt.Errorf("parsing %s rules: %w", family, err)
	}
	return rs, nil
}

// KubeRulesOnly keeps, of an iptables-save dump, what kube-proxy (or Switchyard)
// owns: the KUBE- chains and their rules, and of the built-in chains only the
// rules that jump to a KUBE- chain. It is the fallback when a node's dump holds
// rules the tracer cannot follow (a CNI's -m set or -m physdev, say): the
// explanation then covers the proxy's rules alone, and the caller must say so.
// Since the other software's rules are gone, the built-in chains' policies are
// set to ACCEPT: a DROP policy is there for those rules to make exceptions to,
// and without them it would drop everything. It returns how many rules it left
// out.
func KubeRulesOnly(dump []byte) (kept []byte, omitted int) {
	var b bytes.Buffer
	for _, line := range strings.SplitAfter(string(dump), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "*") || trimmed == "COMMIT":
		case strings.HasPrefix(trimmed, ":"):
			fields := strings.Fields(trimmed[1:])
			switch {
			case len(fields) >= 2 && isBuiltinName(fields[0]):
				line = ":" + fields[0] + " ACCEPT " + strings.Join(fields[2:], " ") + "\n"
			case len(fields) == 0 || !strings.HasPrefix(fields[0], "KUBE-"):
				continue
			}
		case strings.HasPrefix(trimmed, "-A "):
			fields := strings.Fields(trimmed)
			if len(fields) < 2 || !(strings.HasPrefix(fields[1], "KUBE-") || jumpsToKube(fields)) {
				omitted++
				continue
			}
		}
		b.WriteString(line)
	}
	return b.Bytes(), omitted
}

// isBuiltinName reports whether chain is a built-in chain of some table.
func isBuiltinName(chain string) bool {
	for _, table := range []string{ruleset.TableFilter, ruleset.TableNAT, ruleset.TableMangle, ruleset.TableRaw} {
		if ruleset.IsBuiltinChain(table, chain) {
			return true
		}
	}
	return false
}

// jumpsToKube reports whether a rule's fields end in a jump or goto to a KUBE-
// chain.
func jumpsToKube(fields []string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if (fields[i] == "-j" || fields[i] == "-g" || fields[i] == "--jump" || fields[i] == "--goto") && strings.HasPrefix(fields[i+1], "KUBE-") {
			return true
		}
	}
	return false
}
