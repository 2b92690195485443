package iptables

import (
	"strconv"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
)

// fragment is everything one service port contributes to the tables: the nat chains it
// owns (its KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW- and KUBE-SEP- chains) and its rules
// in the shared chains (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES,
// KUBE-PROXY-FIREWALL). Fragments of different service ports never share a chain or a
// rule, which is what makes a partial sync a sum of per-service edits.
type fragment struct {
	// chains are the owned nat chains, in the order kube-proxy writes them.
	chains []ownedChain
	// shared are the rules in shared chains, in order.
	shared []sharedRule
}

// ruleCounts returns how many rules the fragment puts in the filter and nat tables; a
// nil fragment puts none.
func (f *fragment) ruleCounts() (filter, nat int) {
	if f == nil {
		return 0, 0
	}
	for _, r := range f.shared {
		if r.table == "filter" {
			filter++
		} else {
			nat++
		}
	}
	for _, c := range f.chains {
		nat += len(c.rules)
	}
	return filter, nat
}

// ownedChain is a nat chain and its rules (each the text after "-A NAME ").
type ownedChain struct {
	name  string
	rules []string
}

// sharedRule is one rule in a shared chain.
type sharedRule struct {
	table string // "filter" or "nat"
	chain string
	spec  string // the text after "-A CHAIN "
}

// fragmentBuilder receives a service port's rules as renderService produces them. It
// either writes them straight into a payload (full renders: no intermediate strings, so
// a 10k-service render stays well under a second) or collects them into a fragment
// (partial renders, which compare old and new fragments).
type fragmentBuilder struct {
	// filter and nat are set for direct writing.
	filter, nat *tableWriter
	// current is the owned chain being written, in direct mode.
	current string
	// active collects owned chain names, in direct mode, for stale-chain detection.
	active map[string]struct{}
	// f collects the fragment, in collect mode.
	f fragment

	// The two passes of a streamed full render (see RenderRestores) each write half
	// of a service port, in direct mode. With sharedOnly, writeService reports the
	// number of owned chains to onChains and writes none, and natShared (when set)
	// takes the nat shared rules; with ownedOnly, shared rules are skipped and each
	// owned chain's name goes to onChain as well.
	sharedOnly, ownedOnly bool
	onChains              func(count int)
	onChain               func(name string)
	natShared             func(chain string, parts []string)
}

func (b *fragmentBuilder) direct() bool { return b.nat != nil || b.sharedOnly }

// shared adds a rule to a shared chain.
func (b *fragmentBuilder) shared(table, chain string, parts ...string) {
	if b.direct() {
		if b.ownedOnly {
			return
		}
		if table == "nat" && b.natShared != nil {
			b.natShared(chain, parts)
			return
		}
		w := b.nat
		if table == "filter" {
			w = b.filter
		}
		w.ruleParts("-A", chain, parts)
		return
	}
	b.f.shared = append(b.f.shared, sharedRule{table: table, chain: chain, spec: strings.Join(parts, " ")})
}

// chain starts a new owned chain; later calls to rule append to it.
func (b *fragmentBuilder) chain(name string) {
	if b.direct() {
		if b.onChain != nil {
			b.onChain(name)
		}
		b.nat.declare(name)
		if b.active != nil {
			b.active[name] = struct{}{}
		}
		b.current = name
		return
	}
	b.f.chains = append(b.f.chains, ownedChain{name: name})
}

// rule adds a rule to the current owned chain.
func (b *fragmentBuilder) rule(parts ...string) {
	if b.direct() {
		b.nat.ruleParts("-A", b.current, parts)
		return
	}
	c := &b.f.chains[len(b.f.chains)-1]
	c.rules = append(c.rules, strings.Join(parts, " "))
}

// ruleOf adds a rule whose arguments come in several lists to the current owned chain
// (the local-traffic detector's arguments stand in the middle of rules written for
// every service port), without building the joined list.
func (b *fragmentBuilder) ruleOf(lists ...[]string) {
	if b.direct() {
		b.nat.ruleLists("-A", b.current, lists)
		return
	}
	n := 0
	for _, parts := range lists {
		for _, p := range parts {
			n += len(p) + 1
		}
	}
	var spec strings.Builder
	spec.Grow(n)
	for _, parts := range lists {
		for _, p := range parts {
			if spec.Len() > 0 {
				spec.WriteByte(' ')
			}
			spec.WriteString(p)
		}
	}
	c := &b.f.chains[len(b.f.chains)-1]
	c.rules = append(c.rules, spec.String())
}

// quote wraps a comment that contains spaces in double quotes, as kube-proxy does.
func quote(s string) string { return `"` + s + `"` }

// renderService computes the fragment of one service port for one family. It returns
// nil when the service has no cluster IP of cfg's family.
func renderService(port *endpoints.ServicePort, allEndpoints []*endpoints.Endpoint, cfg *Config) *fragment {
	var b fragmentBuilder
	if !writeService(&b, port, allEndpoints, cfg) {
		return nil
	}
	return &b.f
}

// writeService produces the rules of one service port for one family into b, following
// kube-proxy v1.37's syncProxyRules service by service. It reports false, producing
// nothing, when the service has no cluster IP of cfg's family.
func writeService(b *fragmentBuilder, port *endpoints.ServicePort, allEndpoints []*endpoints.Endpoint, cfg *Config) bool {
	clusterIP := port.ClusterIP(cfg.Family)
	if !clusterIP.IsValid() {
		return false
	}
	port = port.OfFamily(cfg.Family)
	name := port.Name
	nameStr := name.String()
	proto := strings.ToLower(string(name.Protocol))
	portStr := strconv.Itoa(int(port.Port))
	sel := endpoints.Select(endpoints.EndpointsOf(allEndpoints, cfg.Family), port, cfg.Node)

	clusterChain := ServiceChain(name)
	localChain := LocalServiceChain(name)
	extChain := ExternalChain(name)
	fwChain := FirewallChain(name)

	usesClusterChain := len(sel.Cluster) > 0 && port.UsesClusterEndpoints()
	usesLocalChain := len(sel.Local) > 0 && port.UsesLocalEndpoints()

	internalChain, hasInternal := clusterChain, sel.HasAny
	if port.InternalPolicyLocal {
		internalChain, hasInternal = localChain, len(sel.Local) > 0
	}
	externalPolicyChain, hasExternal := clusterChain, sel.HasAny
	if port.ExternalPolicyLocal {
		externalPolicyChain, hasExternal = localChain, len(sel.Local) > 0
	}
	externalIPs := port.ExternalIPs // already of cfg.Family: port is the OfFamily view
	lbIPs := port.LoadBalancerVIPs
	sourceRanges := port.SourceRangesOf(cfg.Family)
	// External reachability is decided per family (port.OfFamily), as kube-proxy's
	// per-family proxiers do; a node port makes a service reachable in both.
	usesExtChain := sel.HasAny && port.ExternallyAccessible()
	lbChain := extChain
	usesFWChain := sel.HasAny && len(lbIPs) > 0 && len(sourceRanges) > 0
	if usesFWChain {
		lbChain = fwChain
	}

	// A service with no endpoints anywhere is rejected, so clients fail at once; one
	// with endpoints elsewhere but none here (Local policy) is dropped, as kube-proxy
	// does, so that a load balancer's retry finds another node.
	var internalTarget, internalComment, externalTarget, externalComment string
	if !sel.HasAny {
		internalTarget, externalTarget = "REJECT", "REJECT"
		internalComment = quote(nameStr + " has no endpoints")
		externalComment = internalComment
	} else {
		if !hasInternal {
			internalTarget, internalComment = "DROP", quote(nameStr+" has no local endpoints")
		}
		if !hasExternal {
			externalTarget, externalComment = "DROP", quote(nameStr+" has no local endpoints")
		}
	}

	clusterIPStr := clusterIP.String()
	clusterComment := quote(nameStr + " cluster IP")

	// Dispatch from the shared chains.
	if hasInternal {
		b.shared("nat", ChainServices, "-m", "comment", "--comment", clusterComment, "-m", proto, "-p", proto, "-d", clusterIPStr, "--dport", portStr, "-j", internalChain)
	} else {
		b.shared("filter", ChainServices, "-m", "comment", "--comment", internalComment, "-m", proto, "-p", proto, "-d", clusterIPStr, "--dport", portStr, "-j", internalTarget)
	}
	for _, ip := range externalIPs {
		dst := ip.String()
		if sel.HasAny {
			b.shared("nat", ChainServices, "-m", "comment", "--comment", quote(nameStr+" external IP"), "-m", proto, "-p", proto, "-d", dst, "--dport", portStr, "-j", extChain)
		}
		if !hasExternal {
			b.shared("filter", ChainExternalServices, "-m", "comment", "--comment", externalComment, "-m", proto, "-p", proto, "-d", dst, "--dport", portStr, "-j", externalTarget)
		}
	}
	for _, ip := range lbIPs {
		dst := ip.String()
		if sel.HasAny {
			b.shared("nat", ChainServices, "-m", "comment", "--comment", quote(nameStr+" loadbalancer IP"), "-m", proto, "-p", proto, "-d", dst, "--dport", portStr, "-j", lbChain)
		}
		if usesFWChain {
			b.shared("filter", ChainProxyFirewall, "-m", "comment", "--comment", quote(nameStr+" traffic not accepted by "+fwChain), "-m", proto, "-p", proto, "-d", dst, "--dport", portStr, "-j", "DROP")
		}
	}
	if !hasExternal {
		for _, ip := range lbIPs {
			b.shared("filter", ChainExternalServices, "-m", "comment", "--comment", externalComment, "-m", proto, "-p", proto, "-d", ip.String(), "--dport", portStr, "-j", externalTarget)
		}
	}
	if port.NodePort != 0 {
		nodePort := strconv.Itoa(int(port.NodePort))
		if sel.HasAny {
			// kube-proxy counts localhost node-port packets with a rule of their own
			// in front, where the nfacct counter exists.
			if cfg.localhostFirewall() && cfg.NFAcctCounters {
				b.shared("nat", ChainNodePorts, "-m", "comment", "--comment", nameStr, "-m", proto, "-p", proto, "-d", "127.0.0.0/8", "--dport", nodePort,
					"-m", "nfacct", "--nfacct-name", nfacct.CounterLocalhostNodePorts, "-j", extChain)
			}
			b.shared("nat", ChainNodePorts, "-m", "comment", "--comment", nameStr, "-m", proto, "-p", proto, "--dport", nodePort, "-j", extChain)
		}
		if !hasExternal {
			b.shared("filter", ChainExternalServices, "-m", "comment", "--comment", externalComment,
				"-m", "addrtype", "--dst-type", "LOCAL", "-m", proto, "-p", proto, "--dport", nodePort, "-j", externalTarget)
		}
	}
	if port.HealthCheckNodePort != 0 {
		b.shared("filter", ChainNodePorts, "-m", "comment", "--comment", quote(nameStr+" health check node port"),
			"-m", "tcp", "-p", "tcp", "--dport", strconv.Itoa(int(port.HealthCheckNodePort)), "-j", "ACCEPT")
	}

	if b.sharedOnly {
		// The first pass of a streamed render needs only how many chains follow,
		// not their names (each endpoint's is a hash).
		b.onChains(ownedChainCount(len(sel.Reachable), usesExtChain, usesFWChain, usesClusterChain, usesLocalChain))
		return true
	}

	// The service's own chains. The masquerade rule goes first into the internal
	// policy chain: off-cluster clients of a cluster IP must be SNATed so replies come
	// back through this node.
	writeMasqRule := func() {
		switch {
		case cfg.MasqueradeAll:
			b.rule("-m", "comment", "--comment", clusterComment, "-m", proto, "-p", proto, "-d", clusterIPStr, "--dport", portStr, "-j", ChainMarkMasq)
		case cfg.DetectsLocal():
			b.ruleOf([]string{"-m", "comment", "--comment", clusterComment, "-m", proto, "-p", proto, "-d", clusterIPStr, "--dport", portStr},
				cfg.Local.IfNotLocal(), []string{"-j", ChainMarkMasq})
		}
	}

	if usesExtChain {
		b.chain(extChain)
		if !port.ExternalPolicyLocal {
			b.rule("-m", "comment", "--comment", quote("masquerade traffic for "+nameStr+" external destinations"), "-j", ChainMarkMasq)
		} else {
			// Local policy keeps the client's source address. Pods and the node itself
			// are short-circuited to the cluster-wide endpoints, since their traffic
			// would otherwise be dropped on a node without local endpoints.
			if cfg.DetectsLocal() {
				b.ruleOf([]string{"-m", "comment", "--comment", quote("pod traffic for " + nameStr + " external destinations")},
					cfg.Local.IfLocal(), []string{"-j", clusterChain})
			}
			b.rule("-m", "comment", "--comment", quote("masquerade LOCAL traffic for "+nameStr+" external destinations"), "-m", "addrtype", "--src-type", "LOCAL", "-j", ChainMarkMasq)
			b.rule("-m", "comment", "--comment", quote("route LOCAL traffic for "+nameStr+" external destinations"), "-m", "addrtype", "--src-type", "LOCAL", "-j", clusterChain)
		}
		if hasExternal {
			b.rule("-j", externalPolicyChain)
		}
	}

	if usesFWChain {
		b.chain(fwChain)
		comment := quote(nameStr + " loadbalancer IP")
		allowFromNode := false
		for _, cidr := range sourceRanges {
			b.rule("-m", "comment", "--comment", comment, "-s", cidr.String(), "-j", extChain)
			for _, ip := range cfg.NodeIPs {
				allowFromNode = allowFromNode || cidr.Contains(ip)
			}
		}
		// Traffic the node sends to an LB IP may come back with the LB IP as source
		// (kubernetes#69005); admit it when the ranges admit the node.
		if allowFromNode {
			for _, ip := range lbIPs {
				b.rule("-m", "comment", "--comment", comment, "-s", ip.String(), "-j", extChain)
			}
		}
		// Falling off the end of the chain leaves the packet unmarked for DNAT; the
		// filter table's KUBE-PROXY-FIREWALL then drops it.
		b.rule("-m", "comment", "--comment", quote("other traffic to "+nameStr+" will be dropped by KUBE-PROXY-FIREWALL"))
	}

	// Each endpoint's "ip:port", chain name and comment are needed up to three times;
	// compute them once.
	epInfo := make(map[*endpoints.Endpoint]*endpointNames, len(sel.Reachable))
	for _, ep := range sel.Reachable {
		epStr := ep.String()
		epInfo[ep] = &endpointNames{str: epStr, chain: EndpointChain(name, epStr), comment: quote(nameStr + " -> " + epStr)}
	}
	affinity := port.AffinityTimeoutSeconds > 0
	writePolicyChain := func(chainName string, eps []*endpoints.Endpoint) {
		b.chain(chainName)
		if hasInternal && chainName == internalChain {
			writeMasqRule()
		}
		if affinity {
			seconds := strconv.Itoa(int(port.AffinityTimeoutSeconds))
			for _, ep := range eps {
				n := epInfo[ep]
				b.rule("-m", "comment", "--comment", n.comment,
					"-m", "recent", "--name", n.chain, "--rcheck", "--seconds", seconds, "--reap", "-j", n.chain)
			}
		}
		for i, ep := range eps {
			n := epInfo[ep]
			if i < len(eps)-1 {
				b.rule("-m", "comment", "--comment", n.comment,
					"-m", "statistic", "--mode", "random", "--probability", probability(len(eps)-i), "-j", n.chain)
			} else {
				b.rule("-m", "comment", "--comment", n.comment, "-j", n.chain)
			}
		}
	}
	if usesClusterChain {
		writePolicyChain(clusterChain, sel.Cluster)
	}
	if usesLocalChain {
		writePolicyChain(localChain, sel.Local)
	}
	for _, ep := range sel.Reachable {
		n := epInfo[ep]
		b.chain(n.chain)
		// Hairpin: a pod reaching itself through its service must be masqueraded, or
		// it would see its own address as the source and drop the reply.
		b.rule("-m", "comment", "--comment", nameStr, "-s", ep.IP.String(), "-j", ChainMarkMasq)
		if affinity {
			b.rule("-m", "comment", "--comment", nameStr, "-m", "recent", "--name", n.chain, "--set",
				"-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", n.str)
		} else {
			b.rule("-m", "comment", "--comment", nameStr, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", n.str)
		}
	}
	return true
}

// ownedChainCount is the number of chains writeService declares for a service port:
// one per reachable endpoint, and one per chain it uses.
func ownedChainCount(endpoints int, uses ...bool) int {
	n := endpoints
	for _, used := range uses {
		if used {
			n++
		}
	}
	return n
}

// endpointNames are the strings one endpoint's rules use.
type endpointNames struct {
	str, chain, comment string
}

// probability returns the statistic match's probability for the first of n remaining
// endpoints: 1/n with ten decimals, which keeps the split even with many endpoints
// (kubernetes PR #83599).
func probability(n int) string {
	return strconv.FormatFloat(1.0/float64(n), 'f', 10, 64)
}
