package iptables

import (
	"bytes"
	"net/netip"
	"slices"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// Plan is the outcome of a render: the restore payload and what it does.
type Plan struct {
	// Full is true for a full render, false for a partial one.
	Full bool
	// Payload is the exact input for `iptables-restore --noflush` (or ip6tables-restore),
	// holding a *filter and a *nat block. It is empty when nothing needs writing.
	Payload []byte
	// Stats counts what the payload writes.
	Stats Stats
}

// Stats counts the work in a Plan, for logs and metrics.
type Stats struct {
	// Services is the number of service ports rendered (all for a full render, the
	// changed ones for a partial render).
	Services int
	// Chains is the number of chains declared, that is created or flushed.
	Chains int
	// Rules is the number of rules appended, inserted or deleted.
	Rules int
	// DeletedChains is the number of chains removed with -X.
	DeletedChains int
	// FilterRules and NATRules count the rules a full render leaves in each table
	// (kube-proxy's sync_proxy_rules_iptables_total); zero for partial renders.
	FilterRules, NATRules int
	// FilterWritten and NATWritten count the rules written (appended, inserted or
	// deleted) in each table (kube-proxy's sync_proxy_rules_iptables_last).
	FilterWritten, NATWritten int
	// FilterDelta and NATDelta are how many rules a partial render adds to (or, when
	// negative, removes from) each table, so that the caller can keep
	// sync_proxy_rules_iptables_total up to date between full renders.
	FilterDelta, NATDelta int
}

// tableWriter collects one table's block of a payload: declarations first, then rules,
// then deletions, so that every jump target exists when its rule is read and every
// chain is unreferenced when it is deleted.
type tableWriter struct {
	decls, rules, deletes bytes.Buffer
	stats                 *Stats
	appended              int // rules written with -A
	written               int // rules written with any operation
	// skipRules and skipDecls count rules and declarations without writing them:
	// RenderStream's two passes each write one half.
	skipRules, skipDecls bool
}

func (w *tableWriter) declare(chain string) {
	if w.skipDecls {
		w.stats.Chains++
		return
	}
	w.decls.WriteString(":")
	w.decls.WriteString(chain)
	w.decls.WriteString(" - [0:0]\n")
	w.stats.Chains++
}

// ruleParts writes a rule given as separate arguments, without joining them first.
func (w *tableWriter) ruleParts(op, chain string, parts []string) {
	w.ruleLists(op, chain, [][]string{parts})
}

// ruleLists writes one rule whose arguments come in several lists, without joining
// the lists first.
func (w *tableWriter) ruleLists(op, chain string, lists [][]string) {
	if w.skipRules {
		w.count(op)
		return
	}
	w.rules.WriteString(op)
	w.rules.WriteByte(' ')
	w.rules.WriteString(chain)
	for _, parts := range lists {
		for _, p := range parts {
			w.rules.WriteByte(' ')
			w.rules.WriteString(p)
		}
	}
	w.rules.WriteByte('\n')
	w.stats.Rules++
	w.written++
	w.appended++
}

func (w *tableWriter) rule(op, chain, spec string) {
	if w.skipRules {
		w.count(op)
		return
	}
	w.rules.WriteString(op)
	w.rules.WriteByte(' ')
	w.rules.WriteString(chain)
	w.rules.WriteByte(' ')
	w.rules.WriteString(spec)
	w.rules.WriteByte('\n')
	w.stats.Rules++
	w.written++
	if op == "-A" {
		w.appended++
	}
}

// count counts a rule written with op without writing it.
func (w *tableWriter) count(op string) {
	w.stats.Rules++
	w.written++
	if op == "-A" {
		w.appended++
	}
}

func (w *tableWriter) delete(chain string) {
	w.deletes.WriteString("-X ")
	w.deletes.WriteString(chain)
	w.deletes.WriteByte('\n')
	w.stats.DeletedChains++
}

func (w *tableWriter) empty() bool {
	return w.decls.Len() == 0 && w.rules.Len() == 0 && w.deletes.Len() == 0
}

func (w *tableWriter) writeTo(out *bytes.Buffer, table string) {
	out.WriteString("*")
	out.WriteString(table)
	out.WriteByte('\n')
	out.Write(w.decls.Bytes())
	out.Write(w.rules.Bytes())
	out.Write(w.deletes.Bytes())
	out.WriteString("COMMIT\n")
}

// defaultMasquerade holds the shared masquerade chains' rules with kube-proxy's
// defaults: --iptables-masquerade-bit 14, and the INVALID drop
// (nf_conntrack_tcp_be_liberal unset). Built once: every full render writes them.
var defaultMasquerade = xtables.NewMasqueradeRules(xtables.MasqueradeMark(xtables.DefaultMasqueradeBit), true)

// masqueradeRules returns the shared masquerade chains' rules for cfg: the mark is
// 1<<--iptables-masquerade-bit, and with nf_conntrack_tcp_be_liberal=1 the INVALID
// drop is left out (kubernetes PR 120412). The defaults come prebuilt.
func (c *Config) masqueradeRules() xtables.MasqueradeRules {
	if c.Mark() == xtables.MasqueradeMark(xtables.DefaultMasqueradeBit) && !c.ConntrackTCPLiberal {
		return defaultMasquerade
	}
	return xtables.NewMasqueradeRules(c.Mark(), !c.ConntrackTCPLiberal)
}

// localnetDropRule is the martian-localnet drop kube-proxy writes into kubelet's
// KUBE-FIREWALL chain when localhost node ports are on.
const localnetDropRule = `-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`

// Render computes the full payload for a snapshot. It rewrites every chain Switchyard
// owns: the fixed chains, every service's chains and its dispatch rules. Chains named
// in existingNATChains (read from the kernel with iptables-save) that look like service
// chains but that no service needs any more are flushed and deleted, which also removes
// what a kube-proxy that ran before left behind.
//
// Because every chain is declared in the payload, a --noflush restore of it replaces
// the content of chains that already exist in one atomic step: taking over from
// kube-proxy, whose chains have the same names, has no window where traffic fails.
func Render(snap *endpoints.Snapshot, cfg *Config, existingNATChains []string) *Plan {
	plan, filter, nat := renderTables(snap, cfg, existingNATChains, false)
	var out bytes.Buffer
	out.Grow(filter.decls.Len() + filter.rules.Len() + nat.decls.Len() + nat.rules.Len() + nat.deletes.Len() + 4096)
	hooks := cfg.hooks
	hooks.writeCanaries(&out, "mangle")
	filter.writeHooked(&out, "filter", hooks)
	nat.writeHooked(&out, "nat", hooks)
	plan.Payload = out.Bytes()
	return plan
}

// renderTables is Render without the payload: the two tables' writers. With
// skipNATRules, the nat table's rules are counted but not written (RenderStream
// writes them in a second pass).
func renderTables(snap *endpoints.Snapshot, cfg *Config, existingNATChains []string, skipNATRules bool) (*Plan, *tableWriter, *tableWriter) {
	plan := &Plan{Full: true}
	filter := &tableWriter{stats: &plan.Stats}
	nat := &tableWriter{stats: &plan.Stats, skipRules: skipNATRules}

	for _, c := range []string{ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall} {
		filter.declare(c)
	}
	if cfg.localhostFirewall() {
		filter.declare(ChainKubeletFirewall)
		filter.rule("-A", ChainKubeletFirewall, localnetDropRule)
	}
	for _, c := range []string{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq} {
		nat.declare(c)
	}
	masq := cfg.masqueradeRules()
	for _, r := range masq.NAT {
		nat.rule("-A", string(r.Chain), r.Spec)
	}

	b := &fragmentBuilder{filter: filter, nat: nat, active: map[string]struct{}{}}
	for _, name := range snap.SortedServices() {
		if writeService(b, snap.Services[name], snap.Endpoints[name], cfg) {
			plan.Stats.Services++
		}
	}
	active := b.active

	stale := make([]string, 0)
	for _, c := range existingNATChains {
		if _, ok := active[c]; !ok && IsServiceChain(c) {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	stale = slices.Compact(stale)
	for _, c := range stale {
		nat.declare(c)
		nat.delete(c)
	}

	for _, r := range masq.Filter {
		filter.rule("-A", string(r.Chain), countInvalidDrops(r.Spec, cfg))
	}

	for _, spec := range nodePortsJumps(cfg) {
		nat.rule("-A", ChainServices, spec)
	}
	plan.Stats.FilterRules = filter.appended
	plan.Stats.NATRules = nat.appended
	plan.Stats.FilterWritten, plan.Stats.NATWritten = filter.written, nat.written
	return plan, filter, nat
}

// invalidDrop is the INVALID drop rule xtables.NewMasqueradeRules writes.
const invalidDrop = "-m conntrack --ctstate INVALID -j DROP"

// countInvalidDrops adds kube-proxy's nfacct counter to the INVALID drop rule where
// the counter exists (-m nfacct between the match and the target, as kube-proxy
// writes it); other rules pass unchanged.
func countInvalidDrops(spec string, cfg *Config) string {
	if spec != invalidDrop || !cfg.NFAcctCounters {
		return spec
	}
	return "-m conntrack --ctstate INVALID -m nfacct --nfacct-name " + nfacct.CounterInvalidDropped + " -j DROP"
}

// nodePortsJumps returns the rules that send packets for this node's addresses on to
// KUBE-NODEPORTS: one addrtype match, or one rule per --nodeport-addresses address. They
// must stay the last rules of KUBE-SERVICES, so that a node port never shadows a service
// IP; partial renders therefore insert service rules at the top.
func nodePortsJumps(cfg *Config) []string {
	const comment = `-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" `
	if !cfg.RestrictNodePorts {
		dst := "-m addrtype --dst-type LOCAL"
		switch {
		case cfg.Family == "IPv6":
			dst += " ! -d ::1/128"
		case !cfg.LocalhostNodePorts:
			dst += " ! -d 127.0.0.0/8"
		}
		return []string{comment + dst + " -j " + ChainNodePorts}
	}
	ips := slices.Clone(cfg.NodePortIPs)
	slices.SortFunc(ips, netip.Addr.Compare)
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		// Loopback node ports need route_localnet; they are skipped unless asked for.
		if ip.IsLoopback() && !cfg.localhostFirewall() {
			continue
		}
		out = append(out, comment+"-d "+ip.String()+" -j "+ChainNodePorts)
	}
	return out
}

// RenderPartial computes the payload that turns the tables programmed for prev into
// those for next, touching only the service ports in changed, which must hold every
// service port that differs between them (next.SortedChangedSince(prev); the caller's
// SyncState computes it against the snapshot really applied).
//
// Nothing is rewritten on every sync. kube-proxy rewrites KUBE-SERVICES and the other
// shared chains each time, which at 10k services is the bulk of its one-second syncs;
// here a changed service's rules in the shared chains are edited in place: old rules are
// removed with -D and new ones added with -A, or for nat KUBE-SERVICES inserted at the
// top with -I so that the node-ports jump stays last. Owned chains are redeclared only
// if their content changed, and deleted with -X when no longer needed. The fixed chains
// (KUBE-POSTROUTING, KUBE-MARK-MASQ, KUBE-FORWARD) and the node-ports jump only change
// with the Config, so they are written by full renders alone: at start, after a failed
// apply, when the canary chain disappears, and periodically.
//
// The payload is O(changed services' rules). Rule order inside a shared chain may then
// differ from a full render's, which is harmless: each of a service's shared rules
// matches a destination (address, port, protocol) that no other service's rule matches.
func RenderPartial(prev, next *endpoints.Snapshot, changed []endpoints.ServicePortName, cfg *Config) *Plan {
	plan := &Plan{}
	filter := &tableWriter{stats: &plan.Stats}
	nat := &tableWriter{stats: &plan.Stats}
	for _, name := range changed {
		var before, after *fragment
		if port := prev.Services[name]; port != nil {
			before = renderService(port, prev.Endpoints[name], cfg)
		}
		if port := next.Services[name]; port != nil {
			after = renderService(port, next.Endpoints[name], cfg)
		}
		if before == nil && after == nil {
			continue
		}
		plan.Stats.Services++
		writeFragmentDiff(before, after, filter, nat)
		oldFilter, oldNAT := before.ruleCounts()
		newFilter, newNAT := after.ruleCounts()
		plan.Stats.FilterDelta += newFilter - oldFilter
		plan.Stats.NATDelta += newNAT - oldNAT
	}
	plan.Stats.FilterWritten, plan.Stats.NATWritten = filter.written, nat.written
	if filter.empty() && nat.empty() {
		return plan
	}
	var out bytes.Buffer
	if !filter.empty() {
		filter.writeTo(&out, "filter")
	}
	if !nat.empty() {
		nat.writeTo(&out, "nat")
	}
	plan.Payload = out.Bytes()
	return plan
}

// writeFragmentDiff writes the edits from one service port's old fragment to its new
// one. Either may be nil.
func writeFragmentDiff(before, after *fragment, filter, nat *tableWriter) {
	var oldShared, newShared []sharedRule
	var oldChains, newChains []ownedChain
	if before != nil {
		oldShared, oldChains = before.shared, before.chains
	}
	if after != nil {
		newShared, newChains = after.shared, after.chains
	}
	table := func(name string) *tableWriter {
		if name == "filter" {
			return filter
		}
		return nat
	}
	for _, r := range oldShared {
		if !slices.Contains(newShared, r) {
			table(r.table).rule("-D", r.chain, r.spec)
		}
	}
	for _, r := range newShared {
		if slices.Contains(oldShared, r) {
			continue
		}
		if r.table == "nat" && r.chain == ChainServices {
			table(r.table).rule("-I", r.chain+" 1", r.spec)
		} else {
			table(r.table).rule("-A", r.chain, r.spec)
		}
	}
	// A service with many endpoints owns many chains: index them rather than search.
	oldByName := make(map[string][]string, len(oldChains))
	for _, c := range oldChains {
		oldByName[c.name] = c.rules
	}
	newNames := make(map[string]struct{}, len(newChains))
	for _, c := range newChains {
		newNames[c.name] = struct{}{}
		if old, ok := oldByName[c.name]; ok && slices.Equal(old, c.rules) {
			continue
		}
		nat.declare(c.name)
		for _, spec := range c.rules {
			nat.rule("-A", c.name, spec)
		}
	}
	for _, c := range oldChains {
		if _, ok := newNames[c.name]; !ok {
			nat.declare(c.name)
			nat.delete(c.name)
		}
	}
}
