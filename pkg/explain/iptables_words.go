package explain

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// steps words the rules that matched on one path, leaving out jumps into
// chains where nothing matched (the packet just came back) and bookkeeping
// that says nothing a reader needs (the mark being cleared in
// KUBE-POSTROUTING, the ACCEPT policies).
func (x *iptablesExplainer) steps(hits []tracer.Hit, candidates int) []Step {
	steps := []Step{}
	for i, h := range hits {
		if h.Rule == nil {
			if h.Policy == "DROP" {
				steps = append(steps, Step{Where: where(h), What: "No rule accepted the packet, and this chain's default policy is DROP."})
			}
			continue
		}
		t := h.Rule.Target
		if (t.Kind == ruleset.TargetJump || t.Kind == ruleset.TargetGoto) &&
			(i+1 >= len(hits) || hits[i+1].Chain != t.Chain || hits[i+1].Table != h.Table) {
			continue // nothing matched in the target chain
		}
		if what := x.ruleWords(h, candidates); what != "" {
			steps = append(steps, Step{Where: where(h), What: what})
		}
	}
	return steps
}

func where(h tracer.Hit) string { return h.Table + "/" + h.Chain }

// ruleWords says what one matched rule did, in a sentence; "" leaves it out.
func (x *iptablesExplainer) ruleWords(h tracer.Hit, candidates int) string {
	rule, chain := h.Rule, h.Chain
	t := rule.Target
	comment := rule.Comment()
	switch {
	case ruleset.IsBuiltinChain(h.Table, chain):
		if strings.HasPrefix(t.Chain, "KUBE-") {
			return fmt.Sprintf("Hands the packet to kube-proxy's %s chain%s.", t.Chain, quoted(comment))
		}
	case chain == iptables.ChainMarkMasq:
		return "" // the jump here was already worded, with its reason
	case chain == iptables.ChainPostrouting:
		switch t.Kind {
		case ruleset.TargetReturn:
			return "The packet carries no masquerade mark, so its source address is left alone."
		case ruleset.TargetMasquerade:
			return "The packet carries the masquerade mark: its source address is replaced by this node's address (MASQUERADE)."
		}
		return ""
	case t.Chain == iptables.ChainMarkMasq:
		return "Marks the packet for masquerading (acted on in KUBE-POSTROUTING as it leaves) because " + x.masqRuleWords(h) + "."
	case t.Kind == ruleset.TargetDNAT:
		dst := t.ToAddr.String()
		if t.ToPort != 0 {
			dst = netip.AddrPortFrom(t.ToAddr, uint16(t.ToPort)).String()
		}
		return fmt.Sprintf("Rewrites the destination to the endpoint %s (DNAT).", dst)
	case t.Kind == ruleset.TargetReject || t.Kind == ruleset.TargetDrop:
		if cause := x.refusalCause(h); cause != "" {
			verb := "Drops"
			if t.Kind == ruleset.TargetReject {
				verb = "Rejects"
			}
			return verb + " the packet: " + cause + "."
		}
	case chain == iptables.ChainServices && h.Table == ruleset.TableNAT && t.Chain == iptables.ChainNodePorts:
		return fmt.Sprintf("The destination %s is one of this node's own addresses, so kube-proxy looks for a node port.", x.pkt.Dst.Addr())
	case chain == iptables.ChainServices || chain == iptables.ChainNodePorts:
		if svc, ok := x.serviceOfHit(h); ok {
			if svc.Kind == NodePort {
				return fmt.Sprintf("%s port %d is the node port of %s.", strings.ToUpper(x.pkt.Proto), x.pkt.Dst.Port(), svc)
			}
			return fmt.Sprintf("%s is the %s of %s (%s port %d).", x.pkt.Dst.Addr(), svc.Kind.words(), svc, x.pkt.Proto, x.pkt.Dst.Port())
		}
		if t.Kind == ruleset.TargetAccept && strings.HasSuffix(comment, " health check node port") {
			return fmt.Sprintf("Port %d is the health-check node port of %s: accepted for the load balancer's health checker.",
				x.pkt.Dst.Port(), strings.TrimSuffix(comment, " health check node port"))
		}
	case strings.HasPrefix(chain, "KUBE-FW-"):
		return x.firewallWords(h)
	case strings.HasPrefix(chain, "KUBE-EXT-"):
		return x.externalWords(h)
	case isPolicyChain(chain) && strings.HasPrefix(t.Chain, "KUBE-SEP-"):
		return x.pickWords(h, candidates)
	case chain == iptables.ChainForward && t.Kind == ruleset.TargetAccept:
		return "Lets the packet be forwarded: kube-proxy accepts service traffic here even where the forward policy is DROP."
	}
	// Anything else: say which rule matched, as written.
	return fmt.Sprintf("Matches -A %s %s.", chain, rule)
}

// pickWords words a KUBE-SVC-/KUBE-SVL- rule that sent the packet to one
// endpoint's chain.
func (x *iptablesExplainer) pickWords(h tracer.Hit, candidates int) string {
	_, ep, _ := strings.Cut(h.Rule.Comment(), " -> ")
	local := ""
	if strings.HasPrefix(h.Chain, "KUBE-SVL-") {
		local = " on this node"
	}
	for _, m := range h.Rule.Matches {
		if r, ok := m.(*ruleset.RecentMatch); ok && r.Command == ruleset.RecentCheck {
			return fmt.Sprintf("The client used %s within the last %d s (session affinity), so it goes there again.", ep, r.Seconds)
		}
	}
	if candidates <= 1 {
		return fmt.Sprintf("Sends the packet to %s, the only endpoint%s.", ep, local)
	}
	return fmt.Sprintf("Picks one of %d endpoints%s at random; this path follows %s (all candidates are listed below).", candidates, local, ep)
}

// firewallWords words KUBE-FW-, the load-balancer source-range check.
func (x *iptablesExplainer) firewallWords(h tracer.Hit) string {
	if h.Rule.Target.Kind == ruleset.TargetNone {
		return fmt.Sprintf("The source %s is in none of the load balancer's allowed ranges (loadBalancerSourceRanges): the packet is left untranslated, to be dropped by KUBE-PROXY-FIREWALL.", x.pkt.Src)
	}
	if s := h.Rule.Source; s != nil && s.Prefix.IsSingleIP() && s.Prefix.Addr() == x.pkt.Dst.Addr() {
		return "The source is the load-balancer IP itself (traffic the node sent to its own load balancer, coming back): allowed."
	}
	if s := h.Rule.Source; s != nil {
		return fmt.Sprintf("The source %s is within %s, one of the load balancer's allowed ranges (loadBalancerSourceRanges).", x.pkt.Src, s.Prefix)
	}
	return fmt.Sprintf("Matches -A %s %s.", h.Chain, h.Rule)
}

// externalWords words KUBE-EXT-, where traffic to a node port, external IP or
// load-balancer IP is sorted by external traffic policy.
func (x *iptablesExplainer) externalWords(h tracer.Hit) string {
	comment, t := h.Rule.Comment(), h.Rule.Target
	switch {
	case strings.HasPrefix(comment, "pod traffic for "):
		return "The packet comes from a pod, so it goes to all of the Service's endpoints as if sent to the cluster IP (externalTrafficPolicy Local applies only to traffic from outside)."
	case strings.HasPrefix(comment, "route LOCAL traffic for "):
		return "The packet comes from the node itself, so it goes to all of the Service's endpoints (externalTrafficPolicy Local applies only to traffic from outside)."
	case strings.HasPrefix(t.Chain, "KUBE-SVL-"):
		return "externalTrafficPolicy is Local: only endpoints on this node are used, and the client's address is kept."
	case strings.HasPrefix(t.Chain, "KUBE-SVC-"):
		return "On to the Service's endpoints."
	}
	return fmt.Sprintf("Matches -A %s %s.", h.Chain, h.Rule)
}

// masqRuleWords says why a rule jumping to KUBE-MARK-MASQ matched, as a
// clause ("the source ... is outside the cluster CIDR").
func (x *iptablesExplainer) masqRuleWords(h tracer.Hit) string {
	rule, comment := h.Rule, h.Rule.Comment()
	switch {
	case strings.HasPrefix(h.Chain, "KUBE-SEP-"):
		return fmt.Sprintf("the source %s is this endpoint itself (hairpin): without masquerading, the pod's reply to itself would not pass back through the node to be un-NATed, and would be dropped", x.pkt.Src)
	case strings.HasPrefix(comment, "masquerade traffic for "):
		return "externalTrafficPolicy is Cluster: traffic to a node port, external IP or load-balancer IP is masqueraded, since the endpoint may be on another node and must reply through this one"
	case strings.HasPrefix(comment, "masquerade LOCAL traffic for "):
		return "the packet comes from the node itself to an external address of the Service, and the node's own address must be the source for the reply to find it"
	case isPolicyChain(h.Chain) && strings.HasSuffix(comment, suffixClusterIP):
		if s := rule.Source; s != nil && s.Negate {
			return fmt.Sprintf("the source %s is outside the cluster CIDR %s: traffic from off the pod network to a cluster IP is masqueraded so the reply comes back through this node", x.pkt.Src, s.Prefix)
		}
		if i := rule.InIface; i != nil && i.Negate {
			return fmt.Sprintf("the packet did not arrive on a pod interface (%s): traffic from off the pod network to a cluster IP is masqueraded so the reply comes back through this node", i.Name)
		}
		if rule.Source == nil && rule.InIface == nil {
			return "masquerade-all is set: every packet to a cluster IP is masqueraded"
		}
	}
	if comment != "" {
		return fmt.Sprintf("the rule %q in %s matched", comment, h.Chain)
	}
	return fmt.Sprintf("the rule -A %s %s matched", h.Chain, rule)
}

// refusalReason says why a DROP or REJECT rule (or a DROP policy) refused
// the packet, and what that means for the client; "" for a rule that is not
// a refusal.
func (x *iptablesExplainer) refusalReason(h tracer.Hit) string {
	cause := x.refusalCause(h)
	if cause == "" {
		return ""
	}
	if h.Rule != nil && h.Rule.Target.Kind == ruleset.TargetReject {
		return cause + ", so the connection is rejected (the client gets an error at once)"
	}
	return cause + ", so the packet is dropped (the client times out)"
}

// refusalCause words the cause of a refusal, from the rule's comment.
func (x *iptablesExplainer) refusalCause(h tracer.Hit) string {
	if h.Rule == nil {
		return fmt.Sprintf("nothing accepted the packet and the %s chain's default policy is %s", where(h), h.Policy)
	}
	comment := h.Rule.Comment()
	switch {
	case strings.HasSuffix(comment, suffixNoEndpoints):
		return strings.TrimSuffix(comment, suffixNoEndpoints) + " has no endpoints (no ready pod backs it)"
	case strings.HasSuffix(comment, suffixNoLocal):
		return strings.TrimSuffix(comment, suffixNoLocal) + " has no endpoints on this node and its traffic policy is Local " +
			"(a load balancer's health check steers traffic to nodes that have them)"
	case strings.Contains(comment, infixNotAccepted):
		name, _, _ := strings.Cut(comment, infixNotAccepted)
		return fmt.Sprintf("the source %s is not in %s's loadBalancerSourceRanges", x.pkt.Src, name)
	case comment == "block incoming localnet connections":
		return "the destination is in 127.0.0.0/8 but the packet did not come from the node itself (a martian)"
	case h.Rule.Target.Kind != ruleset.TargetDrop && h.Rule.Target.Kind != ruleset.TargetReject:
		return ""
	}
	return fmt.Sprintf("the rule -A %s %s matched", h.Chain, h.Rule)
}

func quoted(comment string) string {
	if comment == "" {
		return ""
	}
	return " (" + comment + ")"
}
