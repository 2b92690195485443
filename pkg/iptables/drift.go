package iptables

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/rulediff"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// drift is what a periodic check found in the kernel's tables.
type drift struct {
	// compared counts the chains compared.
	compared int
	// chains are the chains to rewrite, as "table/CHAIN", sorted: chains of the full
	// render the kernel lacks or holds other rules in, and service chains the kernel
	// holds that the render does not have (a full sync deletes those).
	chains []string
	// hooksMissing lists the hook jumps ("table/CHAIN rule") not in the kernel.
	hooksMissing []string
	// canaryMissing is true when a canary chain of the filter or nat table is gone.
	canaryMissing bool
}

// excluded is the part of the tables a check leaves out: the chains and the shared
// rules of the service ports that syncs changed while the kernel was being read. The
// kernel may hold those in any state between two snapshots; the next check sees them.
type excluded struct {
	// chains holds "nat/CHAIN" for every owned chain of those service ports.
	chains map[string]bool
	// shared holds "table/CHAIN canonical-rule" for their rules in shared chains.
	shared map[string]bool
}

// changedServices returns what a check leaves out when the applied snapshot moved from
// base to after while the kernel was read: the fragments of the changed service ports
// under both snapshots.
func changedServices(base, after *endpoints.Snapshot, changed []endpoints.ServicePortName, cfg *Config) excluded {
	ex := excluded{chains: map[string]bool{}, shared: map[string]bool{}}
	family := rulesetFamily(cfg.Family)
	for _, name := range changed {
		for _, snap := range []*endpoints.Snapshot{base, after} {
			port := snap.Services[name]
			if port == nil {
				continue
			}
			f := renderService(port, snap.Endpoints[name], cfg)
			if f == nil {
				continue
			}
			for _, c := range f.chains {
				ex.chains["nat/"+c.name] = true
			}
			for _, r := range f.shared {
				ex.shared[r.table+"/"+r.chain+" "+canonicalRule(r.spec, family)] = true
			}
		}
	}
	return ex
}

// tables is iptables-save output or a restore payload read without interpreting the
// rules: per table, each chain's rule specifications (what follows "-A CHAIN ") as
// written, in order. A payload's "-X CHAIN" removes the chain.
type tables map[string]map[string][]string

// parseTables reads text as iptables-save prints it, or a Render payload. The rule
// strings share text's memory.
func parseTables(text string) (tables, error) {
	out := tables{}
	var chains map[string][]string
	var table string
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '*':
			table = line[1:]
			if out[table] == nil {
				out[table] = map[string][]string{}
			}
			chains = out[table]
		case line == "COMMIT":
			chains = nil
		case chains == nil:
			return nil, fmt.Errorf("%q outside a table", line)
		case line[0] == ':':
			name, _, _ := strings.Cut(line[1:], " ")
			chains[name] = nil // a declaration flushes
		default:
			op, rest, _ := strings.Cut(line, " ")
			name, spec, _ := strings.Cut(rest, " ")
			switch op {
			case "-A":
				chains[name] = append(chains[name], spec)
			case "-X":
				delete(chains, name)
			case "-I":
				// A hook jump a full sync inserts into a built-in chain (hooks
				// folded into the payload); findDrift checks hooks on its own.
				if !ruleset.IsBuiltinChain(table, name) {
					return nil, fmt.Errorf("%q: insert into a non-built-in chain", line)
				}
			default:
				return nil, fmt.Errorf("%q: unexpected command", line)
			}
		}
	}
	return out, nil
}

// chainNames returns a table's chain names, sorted.
func (t tables) chainNames(table string) []string {
	names := make([]string, 0, len(t[table]))
	for name := range t[table] {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// verifiedPair identifies a chain's rendered rules and the kernel's rules that were
// found equal to them (each as a hash of its text), so that the next check, seeing
// the same two texts, skips the comparison.
type verifiedPair struct{ rendered, kernel uint64 }

// verifiedChains remembers, per "table/CHAIN", the last pair a check found equal. Only
// the check uses it, one check at a time.
type verifiedChains struct {
	seed  maphash.Seed
	pairs map[string]verifiedPair
}

func newVerifiedChains() *verifiedChains {
	return &verifiedChains{seed: maphash.MakeSeed(), pairs: map[string]verifiedPair{}}
}

func (v *verifiedChains) hash(rules []string) uint64 {
	var h maphash.Hash
	h.SetSeed(v.seed)
	for _, r := range rules {
		h.WriteString(r)
		h.WriteByte('\n')
	}
	return h.Sum64()
}

// findDrift compares the kernel's filter and nat tables (iptables-save output) with
// payload, a full render for the snapshot the kernel is meant to hold (rendered with
// the kernel's nat chain names, so that it deletes stale service chains). Each chain
// the payload declares is compared whole, in the form iptables-save prints rules
// (rulediff.CanonicalRule), the shared chains as sets of rules (partial syncs edit
// them in place; see RenderPartial) apart from the trailing node-ports jump. Other
// programs' chains are not looked at, and of the built-in chains only the hook jumps.
//
// Canonicalizing a rule costs microseconds, and at 10k services × 10 endpoints there
// are 430k of them on each side: verified (nil: none) remembers the pairs of texts
// found equal, so a check compares again only the chains whose rendered or kernel
// text changed since the last one, and hashes the rest.
func findDrift(kernel tables, payload string, hooks []xtables.Hook, family ruleset.Family, skip excluded, verified *verifiedChains) (drift, error) {
	want, err := parseTables(payload)
	if err != nil {
		return drift{}, fmt.Errorf("reading the full render: %w", err)
	}
	pairs := map[string]verifiedPair{}
	canonical := func(rules []string) []string {
		out := make([]string, len(rules))
		for i, r := range rules {
			out[i] = canonicalRule(r, family)
		}
		return out
	}
	var d drift
	shared := SharedChains()
	for _, table := range []string{"filter", "nat"} {
		for _, name := range want.chainNames(table) {
			if ruleset.IsBuiltinChain(table, name) || skip.chains[table+"/"+name] {
				continue
			}
			d.compared++
			key := table + "/" + name
			wantRules := want[table][name]
			got, ok := kernel[table][name]
			if !ok {
				d.chains = append(d.chains, key)
				continue
			}
			var pair verifiedPair
			if verified != nil {
				pair = verifiedPair{verified.hash(wantRules), verified.hash(got)}
				if verified.pairs[key] == pair {
					pairs[key] = pair
					continue
				}
			}
			a, b := canonical(got), canonical(wantRules)
			if slices.Contains(shared, name) {
				a, b = sharedOrder(table, name, a, skip), sharedOrder(table, name, b, skip)
			}
			if !slices.Equal(a, b) {
				d.chains = append(d.chains, key)
				continue
			}
			// A pair with rules left out is not the whole chain's: not remembered.
			if verified != nil && len(a) == len(got) {
				pairs[key] = pair
			}
		}
		if _, ok := kernel[table][canary]; !ok {
			d.canaryMissing = true
		}
	}
	if verified != nil {
		verified.pairs = pairs
	}
	for _, name := range kernel.chainNames("nat") {
		if !IsServiceChain(name) || skip.chains["nat/"+name] {
			continue
		}
		if _, ok := want["nat"][name]; !ok {
			d.chains = append(d.chains, "nat/"+name)
		}
	}
	slices.Sort(d.chains)
	builtins := map[string][]string{}
	for _, h := range hooks {
		key := string(h.Table) + "/" + string(h.Chain)
		if builtins[key] == nil {
			builtins[key] = canonical(kernel[string(h.Table)][string(h.Chain)])
		}
		rule := canonicalRule(ruleset.FormatArgs(h.Args), family)
		if !slices.Contains(builtins[key], rule) {
			d.hooksMissing = append(d.hooksMissing, key+" "+rule)
		}
	}
	return d, nil
}

// lastRuleMarker is in the comment of the node-ports jumps, which stay last.
const lastRuleMarker = "this must be the last rule in this chain"

// sharedOrder returns a shared chain's rules without those skip leaves out, sorted,
// except the trailing run of rules that must stay last: service rules in another
// order are no difference, a node-ports jump moved up is.
func sharedOrder(table, chain string, rules []string, skip excluded) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		if !skip.shared[table+"/"+chain+" "+r] {
			out = append(out, r)
		}
	}
	tail := len(out)
	for tail > 0 && strings.Contains(out[tail-1], lastRuleMarker) {
		tail--
	}
	slices.Sort(out[:tail])
	return out
}

// repairPayload returns the restore input that rewrites the named chains ("table/CHAIN")
// as payload (a full render) writes them: each chain's declaration (which flushes it),
// its rules and, for a stale chain the render deletes, its -X; in the render's order,
// so declarations come first and deletions last.
func repairPayload(payload []byte, chains []string) []byte {
	want := make(map[string]bool, len(chains))
	for _, c := range chains {
		want[c] = true
	}
	var out, block bytes.Buffer
	table := ""
	for line := range bytes.Lines(payload) {
		switch {
		case bytes.HasPrefix(line, []byte("*")):
			table = strings.TrimSpace(string(line[1:]))
			block.Reset()
		case bytes.Equal(line, []byte("COMMIT\n")):
			if block.Len() > 0 {
				out.WriteString("*" + table + "\n")
				out.Write(block.Bytes())
				out.WriteString("COMMIT\n")
			}
		default:
			if want[table+"/"+chainOfLine(line)] {
				block.Write(line)
			}
		}
	}
	return out.Bytes()
}

// chainOfLine returns the chain a payload line declares (":NAME - [0:0]") or writes to
// ("-A NAME ...", "-X NAME").
func chainOfLine(line []byte) string {
	if rest, ok := bytes.CutPrefix(line, []byte(":")); ok {
		name, _, _ := bytes.Cut(rest, []byte(" "))
		return string(name)
	}
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return ""
	}
	name, _, _ := bytes.Cut(bytes.TrimSpace(rest), []byte(" "))
	return string(name)
}

// canonicalRule is rulediff.CanonicalRule, or for a rule it cannot read the
// arguments as written, as rulediff.State reads such a rule.
func canonicalRule(spec string, family ruleset.Family) string {
	if rule, err := rulediff.CanonicalRule(spec, family); err == nil {
		return rule
	}
	return strings.Join(strings.Fields(spec), " ")
}

func rulesetFamily(family v1.IPFamily) ruleset.Family {
	if family == v1.IPv6Protocol {
		return ruleset.IPv6
	}
	return ruleset.IPv4
}
