package explain

import (
	"fmt"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// The chains and objects of kube-proxy's nftables table (pkg/nftables writes
// the same names), which explain words by name.
const (
	nftServices         = "services"
	nftFirewallCheck    = "firewall-check"
	nftServiceEPCheck   = "service-endpoints-check"
	nftNodePortEPCheck  = "nodeport-endpoints-check"
	nftClusterIPsCheck  = "cluster-ips-check"
	nftRejectChain      = "reject-chain"
	nftMasquerading     = "masquerading"
	nftServiceNodePorts = "@service-nodeports"
	nftHairpinSet       = "@hairpin-connections"
)

// nftServiceOfChain reads the Service port out of a per-service chain's name:
// "service-HASH-ns/name/proto/port" (also external-, local-, firewall- and
// endpoint-…__ip/port). The port name is empty for a single unnamed port.
func nftServiceOfChain(chain string) (Service, bool) {
	prefix, rest, ok := strings.Cut(chain, "-")
	switch prefix {
	case "service", "external", "local", "firewall", "endpoint":
	default:
		return Service{}, false
	}
	if !ok {
		return Service{}, false
	}
	_, rest, ok = strings.Cut(rest, "-") // the hash
	if !ok {
		return Service{}, false
	}
	rest, _, _ = strings.Cut(rest, "__")
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" {
		return Service{}, false
	}
	return Service{Namespace: parts[0], Name: parts[1], Port: parts[3]}, true
}

// nftTarget is the chain a hit jumps or goes to: the verdict of the map
// element it found, or the rule's own "jump X" / "goto X"; "" for none.
func nftTarget(h nftmodel.Hit) string {
	if h.Element != nil && h.Element.Verdict != nil {
		if v := h.Element.Verdict; v.Kind == nftmodel.VerdictJump || v.Kind == nftmodel.VerdictGoto {
			return v.Chain
		}
		return ""
	}
	if h.Rule == nil || h.Element != nil {
		return ""
	}
	words := strings.Fields(h.Rule.Text)
	for i := 0; i+1 < len(words); i++ {
		if words[i] == "comment" {
			break
		}
		if (words[i] == "jump" || words[i] == "goto") && !strings.HasPrefix(words[i+1], "{") {
			return words[i+1]
		}
	}
	return ""
}

// ruleVerdictWord is the rule's final verdict keyword (drop, reject, accept),
// before its comment, or the verdict of the map element it found.
func ruleVerdictWord(h nftmodel.Hit) string {
	if h.Element != nil && h.Element.Verdict != nil {
		if h.Element.Verdict.Chain == nftRejectChain {
			return "reject"
		}
		return h.Element.Verdict.String()
	}
	if h.Rule == nil {
		return ""
	}
	text, _, _ := strings.Cut(h.Rule.Text, " comment ")
	words := strings.Fields(text)
	if len(words) == 0 {
		return ""
	}
	return words[len(words)-1]
}

// serviceOfHit names the Service port a matched rule or map element serves,
// and which of its addresses the packet used.
func (x *nftExplainer) serviceOfHit(h nftmodel.Hit) (Service, bool) {
	if h.Rule == nil {
		return Service{}, false
	}
	switch {
	case h.Chain == nftServices && h.Element != nil:
		svc, ok := nftServiceOfChain(nftTarget(h))
		switch {
		case strings.Contains(h.Rule.Text, nftServiceNodePorts):
			svc.Kind = NodePort
		case strings.HasPrefix(nftTarget(h), "external-"):
			svc.Kind = ExternalIP
			if kind, known := x.kindFromSnapshot(); known {
				svc.Kind = kind
			}
		default:
			svc.Kind = ClusterIP
		}
		return svc, ok
	case h.Chain == nftFirewallCheck && h.Element != nil:
		svc, ok := nftServiceOfChain(nftTarget(h))
		svc.Kind = LoadBalancerIP
		return svc, ok
	case (h.Chain == nftServiceEPCheck || h.Chain == nftNodePortEPCheck) && h.Element != nil:
		svc, ok := parseServicePortName(h.Element.Comment)
		svc.Kind = x.kindOfRejected(h.Chain)
		return svc, ok
	}
	return Service{}, false
}

// kindOfRejected works out which address of a Service without (local)
// endpoints the packet was sent to: the no-endpoint maps only tell node
// ports from the rest.
func (x *nftExplainer) kindOfRejected(chain string) AddressKind {
	if chain == nftNodePortEPCheck {
		return NodePort
	}
	if kind, ok := x.kindFromSnapshot(); ok {
		return kind
	}
	if x.inClusterIPs() {
		return ClusterIP
	}
	return ExternalIP
}

// kindFromSnapshot finds the packet's destination among the Services'
// addresses, when the objects are known.
func (x *nftExplainer) kindFromSnapshot() (AddressKind, bool) {
	ix := iptablesExplainer{in: IPTablesInput{Snapshot: x.in.Snapshot}, pkt: x.pkt}
	if kind, ok := ix.kindFromSnapshot(); ok {
		return kind, true
	}
	if x.in.Snapshot == nil {
		return "", false
	}
	for _, name := range x.in.Snapshot.SortedServices() {
		sp := x.in.Snapshot.Services[name]
		if int(sp.Port) == int(x.pkt.Dst.Port()) && containsAddr(sp.ClusterIPs, x.pkt.Dst.Addr()) {
			return ClusterIP, true
		}
	}
	return "", false
}

// inClusterIPs reports whether the destination is in the table's cluster-ips
// set.
func (x *nftExplainer) inClusterIPs() bool {
	for _, t := range x.in.Rules.Tables {
		set := t.Sets["cluster-ips"]
		if set == nil {
			continue
		}
		for _, e := range set.Elements {
			if len(e.Key) == 1 && e.Key[0].Addr == x.pkt.Dst.Addr() {
				return true
			}
		}
	}
	return false
}

// steps words the rules that matched on one path, leaving out jumps into
// chains where nothing matched (the packet just came back) and bookkeeping a
// reader does not need. endpoint is the path's DNAT destination, if any.
func (x *nftExplainer) steps(hits []nftmodel.Hit, candidates int, endpoint string) []Step {
	steps := []Step{}
	for i, h := range hits {
		if h.Rule == nil {
			if h.Policy == "drop" {
				steps = append(steps, Step{Where: nftWhere(h), What: "No rule accepted the packet, and this base chain's policy is drop."})
			}
			continue
		}
		target := nftTarget(h)
		// A lookup in services or firewall-check says which Service the packet is
		// for even when nothing matched in the chain it leads to.
		lookup := h.Element != nil && (h.Chain == nftServices || h.Chain == nftFirewallCheck)
		if target != "" && !lookup && (i+1 >= len(hits) || hits[i+1].Chain != target || hits[i+1].Table != h.Table) {
			continue // nothing matched in the target chain
		}
		passed := h.Chain == nftFirewallCheck && (i+1 >= len(hits) || hits[i+1].Chain != target)
		if what := x.ruleWords(h, candidates, endpoint, passed); what != "" {
			steps = append(steps, Step{Where: nftWhere(h), What: what})
		}
	}
	return steps
}

func nftWhere(h nftmodel.Hit) string { return h.Table + "/" + h.Chain }

// isBaseChain reports whether the hit's chain is attached to a hook.
func (x *nftExplainer) isBaseChain(h nftmodel.Hit) bool {
	t := x.table(h.Table)
	return t != nil && t.Chains[h.Chain] != nil && t.Chains[h.Chain].Base != nil
}

// ruleWords says what one matched rule did, in a sentence; "" leaves it out.
// passed is set for a firewall-check hit whose firewall chain let the packet
// through.
func (x *nftExplainer) ruleWords(h nftmodel.Hit, candidates int, endpoint string, passed bool) string {
	chain, text := h.Chain, h.Rule.Text
	target := nftTarget(h)
	switch {
	case x.isBaseChain(h) && target != "":
		return fmt.Sprintf("Hands the packet to kube-proxy's %s chain.", target)
	case chain == nftMasquerading && strings.Contains(text, nftHairpinSet):
		return "The connection goes from an endpoint to itself (hairpin): its source address is replaced by this node's address (masquerade)."
	case chain == nftMasquerading && strings.Contains(text, "masquerade"):
		return "The packet carries the masquerade mark: its source address is replaced by this node's address (masquerade)."
	case chain == nftServices && h.Element != nil:
		if svc, ok := x.serviceOfHit(h); ok {
			if svc.Kind == NodePort {
				return fmt.Sprintf("%s port %d on this node is the node port of %s.", strings.ToUpper(x.pkt.Proto), x.pkt.Dst.Port(), svc)
			}
			return fmt.Sprintf("%s is the %s of %s (%s port %d).", x.pkt.Dst.Addr(), svc.Kind.words(), svc, x.pkt.Proto, x.pkt.Dst.Port())
		}
	case setsMark(text):
		if why := x.markWords(h); why != "" {
			return "Marks the packet for masquerading (acted on in the masquerading chain as it leaves) because " + why + "."
		}
	case chain == nftFirewallCheck && h.Element != nil:
		svc, _ := nftServiceOfChain(target)
		if passed {
			return fmt.Sprintf("%s is a load-balancer IP of %s with loadBalancerSourceRanges; the source %s is within them: allowed.", x.pkt.Dst.Addr(), svc, x.pkt.Src)
		}
		return fmt.Sprintf("%s is a load-balancer IP of %s with loadBalancerSourceRanges, so its firewall chain checks the source.", x.pkt.Dst.Addr(), svc)
	case strings.HasPrefix(chain, "firewall-") && ruleVerdictWord(h) == "drop":
		return "Drops the packet: " + x.refusalCause([]nftmodel.Hit{h}, 0) + "."
	case strings.HasPrefix(chain, "external-"):
		return x.externalWords(h)
	case (strings.HasPrefix(chain, "service-") || strings.HasPrefix(chain, "local-")) && strings.HasPrefix(target, "endpoint-"):
		return x.pickWords(h, candidates, endpoint)
	case (strings.HasPrefix(chain, "service-") || strings.HasPrefix(chain, "local-")) && isDNAT(text):
		return x.pickWords(h, candidates, endpoint)
	case strings.HasPrefix(chain, "endpoint-") && strings.HasPrefix(text, "update @affinity-"):
		return "Remembers the client's address in this endpoint's affinity set, so its next connections come back here (session affinity)."
	case isDNAT(text):
		return fmt.Sprintf("Rewrites the destination to the endpoint %s (DNAT).", endpoint)
	case chain == nftRejectChain:
		return "" // the lookup that sent the packet here was worded
	case h.Element != nil || ruleVerdictWord(h) == "drop" || ruleVerdictWord(h) == "reject":
		if cause := x.refusalCause([]nftmodel.Hit{h}, 0); cause != "" {
			verb := "Drops"
			if ruleVerdictWord(h) == "reject" {
				verb = "Rejects"
			}
			return verb + " the packet: " + cause + "."
		}
	}
	return fmt.Sprintf("Matches: %s", text)
}

// pickWords words the rule of a service- or local- chain that chose the
// endpoint: a `numgen random mod N` vmap to endpoint chains, a numgen dnat
// map straight to the endpoints, or the dnat of a single endpoint.
func (x *nftExplainer) pickWords(h nftmodel.Hit, candidates int, endpoint string) string {
	local := ""
	if strings.HasPrefix(h.Chain, "local-") {
		local = " on this node"
	}
	dnat := ""
	if isDNAT(h.Rule.Text) {
		dnat = ", rewriting the destination to it (DNAT)"
	}
	if candidates <= 1 {
		return fmt.Sprintf("Sends the packet to %s, the only endpoint%s%s.", endpoint, local, dnat)
	}
	return fmt.Sprintf("Picks one of %d endpoints%s at random (numgen random); this path follows %s%s (all candidates are listed below).",
		candidates, local, endpoint, dnat)
}

// externalWords words an external- chain, where traffic to a node port,
// external IP or load-balancer IP is sorted by external traffic policy.
func (x *nftExplainer) externalWords(h nftmodel.Hit) string {
	comment, target := h.Rule.Comment, nftTarget(h)
	switch {
	case comment == "short-circuit pod traffic":
		return "The packet comes from a pod, so it goes to all of the Service's endpoints as if sent to the cluster IP (externalTrafficPolicy Local applies only to traffic from outside)."
	case comment == "short-circuit local traffic":
		return "The packet comes from the node itself, so it goes to all of the Service's endpoints (externalTrafficPolicy Local applies only to traffic from outside)."
	case setsMark(h.Rule.Text):
		return "Marks the packet for masquerading (acted on in the masquerading chain as it leaves) because " + x.markWords(h) + "."
	case strings.HasPrefix(target, "local-"):
		return "externalTrafficPolicy is Local: only endpoints on this node are used, and the client's address is kept."
	case strings.HasPrefix(target, "service-"):
		return "On to the Service's endpoints."
	}
	return fmt.Sprintf("Matches: %s", h.Rule.Text)
}

// markWords says why a rule that sets the masquerade mark matched, as a
// clause; "" for a rule that sets no mark.
func (x *nftExplainer) markWords(h nftmodel.Hit) string {
	text, comment := h.Rule.Text, h.Rule.Comment
	if !setsMark(text) {
		return ""
	}
	switch comment {
	case "masquerade":
		return "externalTrafficPolicy is Cluster: traffic to a node port, external IP or load-balancer IP is masqueraded, since the endpoint may be on another node and must reply through this one"
	case "masquerade local traffic":
		return "the packet comes from the node itself to an external address of the Service, and the node's own address must be the source for the reply to find it"
	case "masquerade clusterIP traffic from outside cluster":
		words := strings.Fields(text)
		for i := 0; i+2 < len(words); i++ {
			if words[i+1] == "!=" && strings.HasSuffix(words[i], "saddr") {
				return fmt.Sprintf("the source %s is outside the cluster CIDR %s: traffic from off the pod network to a cluster IP is masqueraded so the reply comes back through this node", x.pkt.Src, words[i+2])
			}
			if words[i+1] == "!=" && words[i] == "iifname" {
				return fmt.Sprintf("the packet did not arrive on a pod interface (%s): traffic from off the pod network to a cluster IP is masqueraded so the reply comes back through this node", words[i+2])
			}
		}
		return "masquerade-all is set: every packet to a cluster IP is masqueraded"
	}
	if comment != "" {
		return fmt.Sprintf("the rule %q in %s matched", comment, h.Chain)
	}
	return fmt.Sprintf("the rule %q in %s matched", text, h.Chain)
}

// refusalCause words why the hit at hits[i] refused the packet; "" for a hit
// that is not a refusal.
func (x *nftExplainer) refusalCause(hits []nftmodel.Hit, i int) string {
	h := hits[i]
	if h.Rule == nil {
		return fmt.Sprintf("nothing accepted the packet and the %s chain's policy is %s", nftWhere(h), h.Policy)
	}
	switch {
	case h.Chain == nftRejectChain && i > 0:
		return x.refusalCause(hits, i-1)
	case (h.Chain == nftServiceEPCheck || h.Chain == nftNodePortEPCheck) && h.Element != nil:
		name := h.Element.Comment
		if name == "" {
			name = "the Service"
		}
		if ruleVerdictWord(h) == "drop" {
			return name + " has no endpoints on this node and its traffic policy is Local " +
				"(a load balancer's health check steers outside traffic to nodes that have them)"
		}
		return name + " has no endpoints (no ready pod backs it)"
	case strings.HasPrefix(h.Chain, "firewall-"):
		svc, _ := nftServiceOfChain(h.Chain)
		return fmt.Sprintf("the source %s is not in %s's loadBalancerSourceRanges", x.pkt.Src, svc)
	case h.Chain == nftClusterIPsCheck && ruleVerdictWord(h) == "reject":
		return fmt.Sprintf("%s is a cluster IP, but no Service serves %s port %d on it", x.pkt.Dst.Addr(), x.pkt.Proto, x.pkt.Dst.Port())
	case h.Chain == nftClusterIPsCheck && ruleVerdictWord(h) == "drop":
		return fmt.Sprintf("%s is in the service CIDR but is no Service's cluster IP", x.pkt.Dst.Addr())
	case ruleVerdictWord(h) == "drop" || ruleVerdictWord(h) == "reject" || isDNAT(h.Rule.Text):
		return fmt.Sprintf("the rule %s: %s matched", nftWhere(h), h.Rule.Text)
	}
	return ""
}

// isDNAT reports whether a rule's text holds a dnat statement ("dnat to",
// "dnat ip addr . port to", as nft lists it "dnat ip to"), not a
// "ct status dnat" match.
func isDNAT(text string) bool {
	words := strings.Fields(text)
	for i, w := range words {
		if w == "comment" {
			break
		}
		if w == "dnat" && (i == 0 || words[i-1] != "status") {
			return true
		}
	}
	return false
}

// setsMark reports whether a rule's text sets the masquerade mark: "mark set
// mark or 0x4000" as knftables writes it, "meta mark set meta mark | 0x00004000"
// as nft lists it.
func setsMark(text string) bool {
	text, _, _ = strings.Cut(text, " comment ")
	_, value, ok := strings.Cut(text, "mark set ")
	return ok && (strings.Contains(value, "mark or ") || strings.Contains(value, "mark | "))
}
