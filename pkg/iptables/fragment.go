package iptables

import (
	"strconv"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
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

// fragmentBuilder accumulates a fragment's rules.
type fragmentBuilder struct {
	f fragment
}

func (b *fragmentBuilder) shared(table, chain string, parts ...string) {
	b.f.shared = append(b.f.shared, sharedRule{table: table, chain: chain, spec: strings.Join(parts, " ")})
}

// chain starts a new owned chain; later calls to rule append to it.
func (b *fragmentBuilder) chain(name string) {
	b.f.chains = append(b.f.chains, ownedChain{name: name})
}

func (b *fragmentBuilder) rule(parts ...string) {
	c := &b.f.chains[len(b.f.chains)-1]
	c.rules = append(c.rules, strings.Join(parts, " "))
}

// quote wraps a comment that contains spaces in double quotes, as kube-proxy does.
func quote(s string) string { return `"` + s + `"` }

// renderService computes the fragment of one service port for one family, following
// kube-proxy v1.37's syncProxyRules service by service. It returns nil when the service
// has no cluster IP of cfg's family.
func renderService(port *endpoints.ServicePort, allEndpoints []*endpoints.Endpoint, cfg *Config) *fragment {
	clusterIP := port.ClusterIP(cfg.Family)
	if !clusterIP.IsValid() {
		return nil
	}
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
	externalIPs := port.ExternalIPsOf(cfg.Family)
	lbIPs := port.LoadBalancerVIPsOf(cfg.Family)
	sourceRanges := port.SourceRangesOf(cfg.Family)
	// kube-proxy decides external reachability over both families, so a dual-stack
	// node port service gets its EXT chain in each family.
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

	var b fragmentBuilder
	match := func(dst, dport string) []string {
		return []string{"-m", proto, "-p", proto, "-d", dst, "--dport", dport}
	}
	clusterMatch := match(clusterIP.String(), portStr)

	// Dispatch from the shared chains.
	if hasInternal {
		b.shared("nat", ChainServices, append(append([]string{"-m", "comment", "--comment", quote(nameStr + " cluster IP")}, clusterMatch...), "-j", internalChain)...)
	} else {
		b.shared("filter", ChainServices, append(append([]string{"-m", "comment", "--comment", internalComment}, clusterMatch...), "-j", internalTarget)...)
	}
	for _, ip := range externalIPs {
		m := match(ip.String(), portStr)
		if sel.HasAny {
			b.shared("nat", ChainServices, append(append([]string{"-m", "comment", "--comment", quote(nameStr + " external IP")}, m...), "-j", extChain)...)
		}
		if !hasExternal {
			b.shared("filter", ChainExternalServices, append(append([]string{"-m", "comment", "--comment", externalComment}, m...), "-j", externalTarget)...)
		}
	}
	for _, ip := range lbIPs {
		m := match(ip.String(), portStr)
		if sel.HasAny {
			b.shared("nat", ChainServices, append(append([]string{"-m", "comment", "--comment", quote(nameStr + " loadbalancer IP")}, m...), "-j", lbChain)...)
		}
		if usesFWChain {
			b.shared("filter", ChainProxyFirewall, append(append([]string{"-m", "comment", "--comment", quote(nameStr + " traffic not accepted by " + fwChain)}, m...), "-j", "DROP")...)
		}
	}
	if !hasExternal {
		for _, ip := range lbIPs {
			b.shared("filter", ChainExternalServices, append(append([]string{"-m", "comment", "--comment", externalComment}, match(ip.String(), portStr)...), "-j", externalTarget)...)
		}
	}
	if port.NodePort != 0 {
		nodePort := strconv.Itoa(int(port.NodePort))
		if sel.HasAny {
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

	// The service's own chains. The masquerade rule goes first into the internal
	// policy chain: off-cluster clients of a cluster IP must be SNATed so replies come
	// back through this node.
	var masqRule []string
	if hasInternal {
		switch {
		case cfg.MasqueradeAll:
			masqRule = append(append([]string{"-m", "comment", "--comment", quote(nameStr + " cluster IP")}, clusterMatch...), "-j", ChainMarkMasq)
		case cfg.detectsLocal():
			masqRule = append(append([]string{"-m", "comment", "--comment", quote(nameStr + " cluster IP")}, clusterMatch...), "!", "-s", cfg.ClusterCIDR.String(), "-j", ChainMarkMasq)
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
			if cfg.detectsLocal() {
				b.rule("-m", "comment", "--comment", quote("pod traffic for "+nameStr+" external destinations"), "-s", cfg.ClusterCIDR.String(), "-j", clusterChain)
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

	affinity := port.AffinityTimeoutSeconds > 0
	writePolicyChain := func(chainName string, eps []*endpoints.Endpoint) {
		b.chain(chainName)
		if chainName == internalChain && masqRule != nil {
			b.rule(masqRule...)
		}
		if affinity {
			seconds := strconv.Itoa(int(port.AffinityTimeoutSeconds))
			for _, ep := range eps {
				epStr := ep.String()
				sep := EndpointChain(name, epStr)
				b.rule("-m", "comment", "--comment", quote(nameStr+" -> "+epStr),
					"-m", "recent", "--name", sep, "--rcheck", "--seconds", seconds, "--reap", "-j", sep)
			}
		}
		for i, ep := range eps {
			epStr := ep.String()
			sep := EndpointChain(name, epStr)
			if i < len(eps)-1 {
				b.rule("-m", "comment", "--comment", quote(nameStr+" -> "+epStr),
					"-m", "statistic", "--mode", "random", "--probability", probability(len(eps)-i), "-j", sep)
			} else {
				b.rule("-m", "comment", "--comment", quote(nameStr+" -> "+epStr), "-j", sep)
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
		epStr := ep.String()
		sep := EndpointChain(name, epStr)
		b.chain(sep)
		// Hairpin: a pod reaching itself through its service must be masqueraded, or
		// it would see its own address as the source and drop the reply.
		b.rule("-m", "comment", "--comment", nameStr, "-s", ep.IP.String(), "-j", ChainMarkMasq)
		if affinity {
			b.rule("-m", "comment", "--comment", nameStr, "-m", "recent", "--name", sep, "--set",
				"-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", epStr)
		} else {
			b.rule("-m", "comment", "--comment", nameStr, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", epStr)
		}
	}
	return &b.f
}

// probability returns the statistic match's probability for the first of n remaining
// endpoints: 1/n with ten decimals, which keeps the split even with many endpoints
// (kubernetes PR #83599).
func probability(n int) string {
	return strconv.FormatFloat(1.0/float64(n), 'f', 10, 64)
}
