package iptables

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables"
)

const canary = string(xtables.ChainCanary)

// ownedFixedChains are the chains Switchyard (and kube-proxy, in iptables and in IPVS
// mode) create besides the per-service ones, per table, so that cleanup after a mode
// switch removes both sets. kubelet's KUBE-FIREWALL and KUBE-KUBELET-CANARY are not
// ours and are never removed.
var ownedFixedChains = map[string][]string{
	"filter": {ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall, canary,
		"KUBE-NODE-PORT", "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER"},
	"nat": {ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq, canary,
		"KUBE-NODE-PORT", "KUBE-LOAD-BALANCER"},
	"mangle": {canary},
}

// IsOwnedChain reports whether a chain in a table is one Switchyard creates.
func IsOwnedChain(table, chain string) bool {
	return slices.Contains(ownedFixedChains[table], chain) || (table == "nat" && IsServiceChain(chain))
}

// CleanupPlan is what removing Switchyard's iptables rules from one family takes.
type CleanupPlan struct {
	// Payload is the iptables-restore --noflush input that removes everything; empty
	// when there is nothing to remove.
	Payload []byte
	// Chains lists "table/CHAIN" for every chain removed.
	Chains []string
	// HookRules lists "table/CHAIN rule" for every jump removed from a built-in chain.
	HookRules []string
}

// PlanCleanup computes, from iptables-save output of every table, the payload that
// removes every chain Switchyard owns and every rule that jumps to one, leaving all
// other rules alone. It works offline (from the kernel's state, not the API server's),
// and applying it twice is harmless: the second plan is empty.
//
// The payload flushes the owned chains, deletes the jumps to them from the built-in
// chains (and from any other chain that refers to them), then deletes the chains; one
// restore does it atomically.
func PlanCleanup(save []byte) *CleanupPlan {
	type tableState struct {
		owned []string
		jumps []string // "-D CHAIN rule" lines
	}
	tables := map[string]*tableState{}
	var order []string
	var table string
	sc := bufio.NewScanner(bytes.NewReader(save))
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			if tables[table] == nil {
				tables[table] = &tableState{}
				order = append(order, table)
			}
		case strings.HasPrefix(line, ":") && table != "":
			name, _, _ := strings.Cut(line[1:], " ")
			if IsOwnedChain(table, name) {
				tables[table].owned = append(tables[table].owned, name)
			}
		case strings.HasPrefix(line, "-A ") && table != "":
			chain, rule, _ := strings.Cut(line[len("-A "):], " ")
			if IsOwnedChain(table, chain) {
				continue // flushed with its chain
			}
			if target := jumpTarget(rule); target != "" && IsOwnedChain(table, target) {
				tables[table].jumps = append(tables[table].jumps, chain+" "+rule)
			}
		}
	}
	plan := &CleanupPlan{}
	var out bytes.Buffer
	for _, name := range order {
		st := tables[name]
		if len(st.owned) == 0 && len(st.jumps) == 0 {
			continue
		}
		out.WriteString("*" + name + "\n")
		for _, c := range st.owned {
			out.WriteString(":" + c + " - [0:0]\n")
			plan.Chains = append(plan.Chains, name+"/"+c)
		}
		for _, j := range st.jumps {
			out.WriteString("-D " + j + "\n")
			plan.HookRules = append(plan.HookRules, name+"/"+j)
		}
		for _, c := range st.owned {
			out.WriteString("-X " + c + "\n")
		}
		out.WriteString("COMMIT\n")
	}
	plan.Payload = out.Bytes()
	return plan
}

// jumpTarget returns the chain a saved rule jumps or goes to, or "".
func jumpTarget(rule string) string {
	fields := strings.Fields(rule)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-j" || fields[i] == "-g" || fields[i] == "--jump" || fields[i] == "--goto" {
			return fields[i+1]
		}
	}
	return ""
}

// CleanupKernel is what Cleanup needs of one family's iptables on one backend;
// xtables.Exec and the xtables testing Fake implement it.
type CleanupKernel interface {
	// SaveAll returns iptables-save output of every table.
	SaveAll(ctx context.Context) ([]byte, error)
	// Restore applies an iptables-restore --noflush payload atomically.
	Restore(ctx context.Context, payload []byte) error
}

// Cleanup removes, in one restore, every chain Switchyard or kube-proxy (iptables and
// IPVS modes) own in one family and backend and every jump to them, then reads the
// rules again and fails if any is left. It returns the plan it applied; an empty
// Payload means there was nothing to remove. Other programs' rules, and kubelet's
// KUBE-FIREWALL, KUBE-KUBELET-CANARY and KUBE-IPTABLES-HINT, stay.
func Cleanup(ctx context.Context, ipt CleanupKernel) (*CleanupPlan, error) {
	save, err := ipt.SaveAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the rules: %w", err)
	}
	plan := PlanCleanup(save)
	if len(plan.Payload) == 0 {
		return plan, nil
	}
	if err := ipt.Restore(ctx, plan.Payload); err != nil {
		return plan, fmt.Errorf("removing %d chains and %d jumps: %w", len(plan.Chains), len(plan.HookRules), err)
	}
	after, err := ipt.SaveAll(ctx)
	if err != nil {
		return plan, fmt.Errorf("reading the rules after cleanup: %w", err)
	}
	if left := PlanCleanup(after); len(left.Payload) != 0 {
		return plan, fmt.Errorf("still present after cleanup: %s", strings.Join(append(left.Chains, left.HookRules...), ", "))
	}
	return plan, nil
}
