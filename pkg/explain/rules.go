package explain

import (
	"fmt"

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
