package explain

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// ipvsSetWords say what membership of each of kube-proxy's IPVS-mode ipsets means
// for a packet, keyed by the IPv4 set name.
var ipvsSetWords = map[string]string{
	ipvs.SetLoopBack:               "the packet goes from an endpoint to itself (hairpin)",
	ipvs.SetClusterIP:              "the destination is a Service's cluster IP and port",
	ipvs.SetExternalIP:             "the destination is a Service's external IP and port",
	ipvs.SetExternalIPLocal:        "the destination is an external IP of a Service with externalTrafficPolicy Local",
	ipvs.SetLoadBalancer:           "the destination is a Service's load-balancer IP and port",
	ipvs.SetLoadBalancerFW:         "the destination is a load-balancer IP with loadBalancerSourceRanges",
	ipvs.SetLoadBalancerLocal:      "the destination is a load-balancer IP of a Service with externalTrafficPolicy Local",
	ipvs.SetLoadBalancerSourceIP:   "the node is reaching its own load-balancer IP",
	ipvs.SetLoadBalancerSourceCIDR: "the source is in the Service's loadBalancerSourceRanges",
	ipvs.SetNodePortTCP:            "the destination port is a TCP node port",
	ipvs.SetNodePortLocalTCP:       "the destination port is a TCP node port of a Service with externalTrafficPolicy Local",
	ipvs.SetNodePortUDP:            "the destination port is a UDP node port",
	ipvs.SetNodePortLocalUDP:       "the destination port is a UDP node port of a Service with externalTrafficPolicy Local",
	ipvs.SetNodePortSCTP:           "the destination is an SCTP node port",
	ipvs.SetNodePortLocalSCTP:      "the destination is an SCTP node port of a Service with externalTrafficPolicy Local",
	ipvs.SetHealthCheckNodePort:    "the destination port is a health-check node port",
	ipvs.SetIPVSIPs:                "the destination is a Service address bound on " + ipvs.DummyInterface,
}

// ipvsSetBase maps a family's set name back to its IPv4 name (KUBE-6-… to KUBE-…).
func ipvsSetBase(name string, family v1.IPFamily) string {
	for base := range ipvsSetWords {
		if ipvs.SetName(base, family) == name {
			return base
		}
	}
	return name
}

// ipvsSteps words the trace of IPVS mode's companion rules: the rules that matched in
// kube-proxy's chains and the virtual server, leaving out the built-in chains' jumps
// and policies, which say nothing about the Service.
func ipvsSteps(hits []tracer.Hit, family v1.IPFamily) []Step {
	var steps []Step
	for _, h := range hits {
		switch {
		case h.IPVS != nil:
			steps = append(steps, Step{Where: "IPVS " + h.Chain, What: ipvsStepWords(h.IPVS)})
		case h.Rule != nil && strings.HasPrefix(h.Chain, "KUBE-"):
			steps = append(steps, Step{Where: h.Table + "/" + h.Chain, What: describeIPVSRule(h.Rule, family)})
		}
	}
	return steps
}

func ipvsStepWords(vs *tracer.IPVS) string {
	if !vs.Dest.IsValid() {
		return "no real server takes new connections: the kernel refuses the connection (ICMP port unreachable)"
	}
	return "the scheduler can send the connection to real server " + vs.Dest.String() + " (the destination is rewritten to it)"
}

// describeIPVSRule says in words what a matched companion rule tested and did.
func describeIPVSRule(r *ruleset.Rule, family v1.IPFamily) string {
	var conds []string
	for _, m := range r.Matches {
		switch m := m.(type) {
		case *ruleset.SetMatch:
			w, ok := ipvsSetWords[ipvsSetBase(m.Name, family)]
			if !ok {
				w = "the packet is in ipset " + m.Name
			}
			if m.Negate {
				w = "not: " + w
			}
			conds = append(conds, w)
		case *ruleset.AddrTypeMatch:
			if m.DstType == "LOCAL" {
				conds = append(conds, map[bool]string{false: "the destination is one of the node's addresses", true: "the destination is not the node's"}[m.NegateDst])
			}
			if m.SrcType == "LOCAL" {
				conds = append(conds, map[bool]string{false: "the source is the node itself", true: "the source is not the node itself"}[m.NegateSrc])
			}
		case *ruleset.MarkMatch:
			if m.Negate {
				conds = append(conds, "the packet is not marked for masquerade")
			} else {
				conds = append(conds, "the packet is marked for masquerade")
			}
		}
	}
	conds = append(conds, ipvsSourceWords(r)...)
	action := ipvsTargetWords(&r.Target)
	if len(conds) == 0 {
		return strings.ToUpper(action[:1]) + action[1:]
	}
	return strings.Join(conds, " and ") + ": " + action
}

// ipvsSourceWords says what the rule tests about where the packet comes from (-s, -i).
func ipvsSourceWords(r *ruleset.Rule) []string {
	var conds []string
	if s := r.Source; s != nil {
		if s.Negate {
			conds = append(conds, fmt.Sprintf("the source is outside %s", s.Prefix))
		} else {
			conds = append(conds, fmt.Sprintf("the source is in %s", s.Prefix))
		}
	}
	if i := r.InIface; i != nil {
		if i.Negate {
			conds = append(conds, fmt.Sprintf("the packet did not arrive on %s", i.Name))
		} else {
			conds = append(conds, fmt.Sprintf("the packet arrived on %s", i.Name))
		}
	}
	return conds
}

// ipvsTargetWords says what a rule's target does to the packet.
func ipvsTargetWords(t *ruleset.Target) string {
	switch t.Kind {
	case ruleset.TargetAccept:
		return "accepted here, no further rules of this table apply"
	case ruleset.TargetDrop:
		return "dropped"
	case ruleset.TargetReject:
		return "refused"
	case ruleset.TargetReturn:
		return "the rest of this chain is skipped"
	case ruleset.TargetMasquerade:
		return "the source address is replaced by the node's (masquerade)"
	case ruleset.TargetMark:
		switch t.MarkOp {
		case ruleset.MarkOr, ruleset.MarkSetMark, ruleset.MarkSetXMark:
			return "the masquerade mark is set"
		case ruleset.MarkXor, ruleset.MarkAnd:
			return "the masquerade mark is cleared, so it is not acted on twice"
		}
		return "the packet's mark is changed"
	case ruleset.TargetJump, ruleset.TargetGoto:
		if t.Chain == string(ipvsMarkMasqChain) {
			return "marked for masquerade"
		}
		return "continues in " + t.Chain
	}
	return "no action"
}

const ipvsMarkMasqChain = ipvs.ChainMarkMasq

// ipvsMasqueradeReason says why the packet was masqueraded: the last rule on its path
// that marked it for masquerade, or the hairpin rule that masqueraded it directly.
func ipvsMasqueradeReason(hits []tracer.Hit, family v1.IPFamily) string {
	reason := "a rule marked it for masquerade"
	for _, h := range hits {
		r := h.Rule
		if r == nil {
			continue
		}
		marks := r.Target.Kind == ruleset.TargetJump && r.Target.Chain == ipvs.ChainMarkMasq
		hairpin := r.Target.Kind == ruleset.TargetMasquerade && ipvsHasSet(r, ipvs.SetLoopBack, family)
		if !marks && !hairpin {
			continue
		}
		switch {
		case hairpin:
			reason = "hairpin: the endpoint is reaching itself through its Service, so its reply must come back through the node"
		case ipvsHasSet(r, ipvs.SetClusterIP, family) && (r.Source != nil || r.InIface != nil):
			reason = "the client is not a pod of the cluster (" + strings.Join(ipvsSourceWords(r), ", ") + "), so replies must come back through this node"
		case ipvsHasSet(r, ipvs.SetClusterIP, family) && ipvsSetFlags(r, ipvs.SetClusterIP, family) == "src,dst":
			reason = "the node's own connection uses a Service address as its source"
		case ipvsHasSet(r, ipvs.SetClusterIP, family):
			reason = "--masquerade-all is set: every connection to a cluster IP is masqueraded"
		case ipvsHasSet(r, ipvs.SetExternalIP, family):
			reason = "connections to an external IP are masqueraded so that replies come back through this node"
		case h.Chain == ipvs.ChainNodePort:
			reason = "node-port traffic to a Service with externalTrafficPolicy Cluster may go to another node's endpoint, so it is masqueraded"
		case h.Chain == ipvs.ChainLoadBalancer:
			reason = "load-balancer traffic to a Service with externalTrafficPolicy Cluster may go to another node's endpoint, so it is masqueraded"
		}
	}
	return reason
}

func ipvsHasSet(r *ruleset.Rule, base string, family v1.IPFamily) bool {
	return ipvsSetFlags(r, base, family) != ""
}

// ipvsSetFlags returns the flags of the rule's match on set base ("dst,dst"), or "".
func ipvsSetFlags(r *ruleset.Rule, base string, family v1.IPFamily) string {
	for _, m := range r.Matches {
		if s, ok := m.(*ruleset.SetMatch); ok && s.Name == ipvs.SetName(base, family) {
			return strings.Join(s.Flags, ",")
		}
	}
	return ""
}

// ipvsKeptReason says why a delivered packet keeps its source address.
func ipvsKeptReason(pkt Packet, svc *Service) string {
	switch {
	case svc != nil && svc.Kind != ClusterIP:
		return "the Service's externalTrafficPolicy is Local, or the client is a pod whose replies come back through this node anyway"
	case pkt.From == FromNode:
		return "the node's own connection is answered back to the node"
	case pkt.From == FromPod:
		return "the client is a pod, so replies come back through this node"
	default:
		return "no companion rule marked it for masquerade"
	}
}

// ipvsDropReason says why the packet was dropped or refused before a real server.
func ipvsDropReason(hits []tracer.Hit, pkt Packet) string {
	for _, h := range hits {
		if h.Chain == ipvs.ChainSourceRangesFirewall && h.Rule != nil && h.Rule.Target.Kind == ruleset.TargetDrop {
			return fmt.Sprintf("the source %s is not in the Service's loadBalancerSourceRanges (%s)", pkt.Src, ipvs.ChainSourceRangesFirewall)
		}
	}
	return "stopped by " + ipvsLastChain(hits)
}

// ipvsLastChain names the chain of the trace's last event.
func ipvsLastChain(hits []tracer.Hit) string {
	if len(hits) == 0 {
		return "the rules"
	}
	h := hits[len(hits)-1]
	return h.Table + "/" + h.Chain
}
