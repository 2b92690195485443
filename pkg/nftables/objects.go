package nftables

import (
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// serviceObjects is everything one service port puts in the table: the chains it owns,
// its affinity sets, and its elements in the shared sets and maps. Different service
// ports never share a chain or a set; they may share an element (two ports of one
// Service share their cluster IP in cluster-ips, two services with one endpoint share
// its hairpin-connections element), which the element mirror counts.
type serviceObjects struct {
	chains   []chainSpec
	sets     []affinitySet
	elements []element
}

// chainSpec is a regular chain and its rules, in order.
type chainSpec struct {
	name  string
	rules []ruleSpec
}

// ruleSpec is one rule's text and its comment ("" for none).
type ruleSpec struct {
	text, comment string
}

func (c *chainSpec) add(text, comment string) {
	c.rules = append(c.rules, ruleSpec{text: text, comment: comment})
}

func (c *chainSpec) equal(o *chainSpec) bool {
	if c.name != o.name || len(c.rules) != len(o.rules) {
		return false
	}
	for i := range c.rules {
		if c.rules[i] != o.rules[i] {
			return false
		}
	}
	return true
}

// affinitySet is a per-endpoint session-affinity set (type the family's address,
// flags dynamic,timeout).
type affinitySet struct {
	name, addrType string
	timeoutSeconds int32
}

// element is one element of a shared set or map: key and value are the parts joined
// with " . " (the value "" for a set), as nft itself separates them, so that they can
// be compared with what the kernel lists.
type element struct {
	container string
	key       string
	value     string
	comment   string
}

// isSetName reports whether a container is a set (the others are verdict maps).
func isSetName(container string) bool {
	return container == setClusterIPs || container == setHairpinConnections || container == setNodePortIPs
}

// join joins element parts as nft does.
func join(parts ...string) string { return strings.Join(parts, " . ") }

// renderService computes one service port's objects for cfg's family, following
// kube-proxy v1.37's nftables syncProxyRules service by service. It returns nil when
// the service has no cluster IP of the family.
func renderService(port *endpoints.ServicePort, allEndpoints []*endpoints.Endpoint, cfg *Config) *serviceObjects {
	clusterIP := port.ClusterIP(cfg.Family)
	if !clusterIP.IsValid() {
		return nil
	}
	port = port.OfFamily(cfg.Family)
	name := port.Name
	d := decide(port, allEndpoints, cfg)
	out := &serviceObjects{}
	proto := strings.ToLower(string(name.Protocol))
	portStr := strconv.Itoa(int(port.Port))
	nameStr := name.String()
	comment := truncateComment(nameStr)
	elem := func(container, key, value string, withComment bool) {
		e := element{container: container, key: key, value: value}
		if withComment {
			e.comment = comment
		}
		out.elements = append(out.elements, e)
	}

	// Pods on this node reaching themselves through the service are masqueraded by
	// the masquerading chain (hairpin), for every endpoint reachable from here.
	for _, ep := range d.sel.Reachable {
		if cfg.Node.Name != "" && ep.NodeName == cfg.Node.Name {
			ip := ep.IP.String()
			elem(setHairpinConnections, join(ip, ip, proto, strconv.Itoa(int(ep.Port))), "", false)
		}
	}

	elem(setClusterIPs, clusterIP.String(), "", false)
	if d.hasInternal {
		elem(mapServiceIPs, join(clusterIP.String(), proto, portStr), "goto "+d.internalChain, false)
	} else {
		elem(mapNoEndpointServices, join(clusterIP.String(), proto, portStr), d.internalVerdict, true)
	}
	for _, ip := range port.ExternalIPs {
		if d.sel.HasAny {
			elem(mapServiceIPs, join(ip.String(), proto, portStr), "goto "+d.extChain, false)
		}
		if !d.hasExternal {
			elem(mapNoEndpointServices, join(ip.String(), proto, portStr), d.externalVerdict, true)
		}
	}
	for _, ip := range port.LoadBalancerVIPs {
		if d.sel.HasAny {
			elem(mapServiceIPs, join(ip.String(), proto, portStr), "goto "+d.extChain, false)
		}
		if d.usesFirewall {
			elem(mapFirewallIPs, join(ip.String(), proto, portStr), "goto "+d.fwChain, false)
		}
	}
	if !d.hasExternal {
		for _, ip := range port.LoadBalancerVIPs {
			elem(mapNoEndpointServices, join(ip.String(), proto, portStr), d.externalVerdict, true)
		}
	}
	if port.NodePort != 0 {
		nodePort := strconv.Itoa(int(port.NodePort))
		// Node ports are not subject to loadBalancerSourceRanges, as in kube-proxy.
		if d.sel.HasAny {
			elem(mapServiceNodePorts, join(proto, nodePort), "goto "+d.extChain, false)
		}
		if !d.hasExternal {
			elem(mapNoEndpointNodePorts, join(proto, nodePort), d.externalVerdict, true)
		}
		// With kube-proxy's alpha gate, node ports on loopback are rejected and
		// counted, endpoints or not (localhost.go).
		if cfg.rejectsLocalhost(proto) {
			elem(mapLocalhostNodePortRej, join(proto, nodePort), "goto "+localhostNodePortRejPref+proto, false)
		}
	}

	writeChains(out, port, d, cfg, proto)
	return out
}

// decision is what a service port needs, decided before anything is written.
type decision struct {
	sel                                       endpoints.Selection
	clusterChain, localChain, extChain        string
	fwChain, internalChain, externalChain     string
	hasInternal, hasExternal                  bool
	usesClusterChain, usesLocalChain          bool
	usesExternalChain, usesFirewall, affinity bool
	// internalVerdict and externalVerdict are the no-endpoint-services and
	// no-endpoint-nodeports verdicts: reject (none anywhere) or drop (none local,
	// so that a load balancer's retry finds another node).
	internalVerdict, externalVerdict string
}

func decide(port *endpoints.ServicePort, allEndpoints []*endpoints.Endpoint, cfg *Config) decision {
	name := port.Name
	d := decision{
		sel:          endpoints.Select(endpoints.EndpointsOf(allEndpoints, cfg.Family), port, cfg.Node),
		clusterChain: ServiceChain(name),
		localChain:   LocalChain(name),
		extChain:     ExternalChain(name),
		fwChain:      FirewallChain(name),
		affinity:     port.AffinityTimeoutSeconds > 0,
	}
	d.usesClusterChain = len(d.sel.Cluster) > 0 && port.UsesClusterEndpoints()
	d.usesLocalChain = len(d.sel.Local) > 0 && port.UsesLocalEndpoints()
	d.internalChain, d.hasInternal = d.clusterChain, d.sel.HasAny
	if port.InternalPolicyLocal {
		d.internalChain, d.hasInternal = d.localChain, d.hasInternal && len(d.sel.Local) > 0
	}
	d.externalChain, d.hasExternal = d.clusterChain, d.sel.HasAny
	if port.ExternalPolicyLocal {
		d.externalChain, d.hasExternal = d.localChain, d.hasExternal && len(d.sel.Local) > 0
	}
	// The external chain is needed whenever there are endpoints anywhere, not only
	// local ones: it holds the short-circuit rules for pods and the node itself.
	d.usesExternalChain = d.sel.HasAny && port.ExternallyAccessible()
	// Unlike iptables mode, the firewall chain does not depend on endpoints.
	d.usesFirewall = len(port.LoadBalancerVIPs) > 0 && len(port.SourceRangesOf(cfg.Family)) > 0
	if !d.sel.HasAny {
		d.internalVerdict, d.externalVerdict = "goto "+chainReject, "goto "+chainReject
	} else {
		if !d.hasInternal {
			d.internalVerdict = "drop"
		}
		if !d.hasExternal {
			d.externalVerdict = "drop"
		}
	}
	return d
}

// writeChains adds the service port's own chains and affinity sets to out.
func writeChains(out *serviceObjects, port *endpoints.ServicePort, d decision, cfg *Config, proto string) {
	name := port.Name
	if d.usesClusterChain {
		out.chains = append(out.chains, policyChain(d.clusterChain, name, d.sel.Cluster, d.affinity, cfg, proto))
	}
	if d.usesLocalChain {
		out.chains = append(out.chains, policyChain(d.localChain, name, d.sel.Local, d.affinity, cfg, proto))
	}
	if d.usesExternalChain {
		ext := chainSpec{name: d.extChain}
		if !port.ExternalPolicyLocal {
			// Endpoints may be on other nodes: masquerade so replies come back here.
			ext.add(cfg.masqueradeRule(), "masquerade")
		} else {
			// Local policy keeps the client's address. Pods and the node itself
			// go to the cluster-wide endpoints instead, as if they had gone out to
			// the load balancer and come back.
			if local := cfg.ifLocal(); local != "" {
				ext.add(local+" goto "+d.clusterChain, "short-circuit pod traffic")
			}
			ext.add("fib saddr type local "+cfg.masqueradeRule(), "masquerade local traffic")
			ext.add("fib saddr type local goto "+d.clusterChain, "short-circuit local traffic")
		}
		if d.hasExternal {
			ext.add("goto "+d.externalChain, "")
		}
		out.chains = append(out.chains, ext)
	}
	if d.usesFirewall {
		out.chains = append(out.chains, firewallChain(d.fwChain, port, cfg))
	}
	if !d.affinity {
		return
	}
	for _, ep := range d.sel.Reachable {
		ap := ep.AddrPort()
		out.sets = append(out.sets, affinitySet{name: AffinitySet(name, ap), addrType: cfg.addrType(), timeoutSeconds: port.AffinityTimeoutSeconds})
		c := chainSpec{name: EndpointChain(name, ap)}
		c.add("update @"+AffinitySet(name, ap)+" { "+cfg.ipX()+" saddr }", "")
		c.add("meta l4proto "+proto+" dnat to "+ep.String(), "")
		out.chains = append(out.chains, c)
	}
}

// policyChain writes a Cluster or Local policy chain. Without affinity it DNATs
// directly: one endpoint with a plain dnat (inserting an anonymous map costs more), more
// with a numgen-indexed map. With affinity it sends clients already in an endpoint's
// affinity set to that endpoint's chain, and the others to a random one.
func policyChain(chain string, name endpoints.ServicePortName, eps []*endpoints.Endpoint, affinity bool, cfg *Config, proto string) chainSpec {
	c := chainSpec{name: chain}
	if !affinity {
		if len(eps) == 1 {
			c.add("meta l4proto "+proto+" dnat to "+eps[0].String(), "")
			return c
		}
		var b strings.Builder
		b.WriteString("meta l4proto " + proto + " dnat " + cfg.ipX() + " addr . port to numgen random mod " + strconv.Itoa(len(eps)) + " map { ")
		for i, ep := range eps {
			if i > 0 {
				b.WriteString(" , ")
			}
			b.WriteString(strconv.Itoa(i) + " : " + ep.IP.String() + " . " + strconv.Itoa(int(ep.Port)))
		}
		b.WriteString(" }")
		c.add(b.String(), "")
		return c
	}
	var vmap strings.Builder
	vmap.WriteString("numgen random mod " + strconv.Itoa(len(eps)) + " vmap { ")
	for i, ep := range eps {
		ap := ep.AddrPort()
		epChain := EndpointChain(name, ap)
		c.add(cfg.ipX()+" saddr @"+AffinitySet(name, ap)+" goto "+epChain, "")
		if i > 0 {
			vmap.WriteString(" , ")
		}
		vmap.WriteString(strconv.Itoa(i) + " : goto " + epChain)
	}
	vmap.WriteString(" }")
	c.add(vmap.String(), "")
	return c
}

// firewallChain drops load-balancer traffic from outside the source ranges. Traffic
// the node sends to a load-balancer IP may come back with that IP as its source
// (kubernetes#69005); it is admitted when a range admits the node.
func firewallChain(chain string, port *endpoints.ServicePort, cfg *Config) chainSpec {
	var sources []string
	allowFromNode := false
	for _, cidr := range port.SourceRangesOf(cfg.Family) {
		sources = append(sources, cidr.String())
		for _, ip := range cfg.NodeIPs {
			allowFromNode = allowFromNode || cidr.Contains(ip)
		}
	}
	if allowFromNode {
		for _, ip := range port.LoadBalancerVIPs {
			sources = append(sources, ip.String())
		}
	}
	c := chainSpec{name: chain}
	c.add(cfg.ipX()+" saddr != { "+strings.Join(sources, " , ")+" } drop", "")
	return c
}

// truncateComment cuts a comment to nftables' limit, as kube-proxy does; comments
// do not affect what the rules do.
func truncateComment(s string) string {
	if len(s) > knftables.CommentLengthMax {
		return s[:knftables.CommentLengthMax]
	}
	return s
}
