package explain

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// IPTablesInput is what the iptables mode reads: one family's rules and what
// is known about the node and the cluster.
type IPTablesInput struct {
	// Rules are the node's tables of the packet's family: an iptables-save
	// dump, or a dry-run payload applied on top of the hook rules.
	Rules *ruleset.Ruleset
	// NodeAddrs are the node's own addresses: "-m addrtype --dst-type LOCAL"
	// and node ports match them.
	NodeAddrs []netip.Addr
	// NodeName is this node's name, to tell local endpoints apart; optional.
	NodeName string
	// Owners names the pod and node behind endpoint addresses; optional.
	Owners map[netip.Addr]Owner
	// Snapshot holds the Services, when known; optional. It tells an
	// external IP from a load-balancer IP when only a reject rule is left,
	// and names the Service whose cluster IP has no such port.
	Snapshot *endpoints.Snapshot
	// PodInterface is the interface a pod's packets arrive on (its veth or
	// bridge), for local-traffic detection by interface; optional.
	PodInterface string
	// OutsideInterface is the interface packets from outside arrive on;
	// default "eth0".
	OutsideInterface string
}

// iptablesExplainer holds one explanation's inputs while it is worked out.
type iptablesExplainer struct {
	in  IPTablesInput
	pkt Packet
}

// IPTables explains what the rules in in do with pkt, by tracing it through
// them (every random choice explored) and wording each rule that matched.
func IPTables(in IPTablesInput, pkt Packet) (*Explanation, error) {
	if in.Rules == nil {
		return nil, fmt.Errorf("no rules to explain %s with", pkt)
	}
	origin, inIface := tracer.FromPodOrExternal, in.OutsideInterface
	switch pkt.From {
	case FromNode:
		origin, inIface = tracer.FromLocalProcess, ""
	case FromPod:
		inIface = in.PodInterface
	case FromOutside:
		if inIface == "" {
			inIface = "eth0"
		}
	default:
		return nil, fmt.Errorf("packet %s: unknown origin %q", pkt, pkt.From)
	}
	result, err := tracer.Trace(in.Rules, tracer.Node{LocalAddrs: in.NodeAddrs}, tracer.Packet{
		Src: pkt.Src, Dst: pkt.Dst.Addr(), Proto: pkt.Proto, SrcPort: 40000, DstPort: int(pkt.Dst.Port()),
		Origin: origin, InIface: inIface,
	}, tracer.Options{})
	if err != nil {
		return nil, err
	}
	x := &iptablesExplainer{in: in, pkt: pkt}
	return x.explain(result), nil
}

func (x *iptablesExplainer) explain(result tracer.Result) *Explanation {
	e := &Explanation{Mode: "iptables", Packet: x.pkt, Steps: []Step{}}
	primary := primaryOutcome(result.Outcomes)
	for _, h := range primary.Hits {
		if svc, ok := x.serviceOfHit(h); ok {
			e.Service = &svc
			break
		}
	}
	e.Endpoints = x.endpoints(result.Outcomes)
	e.Steps = x.steps(primary.Hits, len(e.Endpoints))
	e.Affinity = affinityOf(x.in.Rules, primary.Hits)
	x.verdict(e, result.Outcomes, primary)
	x.masquerade(e, result.Outcomes)
	return e
}

// primaryOutcome is the outcome whose path the Steps describe: the first
// delivered one (outcomes are sorted by endpoint), else the first.
func primaryOutcome(outcomes []tracer.Outcome) tracer.Outcome {
	for _, o := range outcomes {
		if o.Verdict == tracer.Accept && o.Endpoint != "" {
			return o
		}
	}
	for _, o := range outcomes {
		if o.Verdict == tracer.Accept {
			return o
		}
	}
	if len(outcomes) == 0 {
		return tracer.Outcome{}
	}
	return outcomes[0]
}

// endpoints sums the chances of the accepted outcomes by endpoint.
func (x *iptablesExplainer) endpoints(outcomes []tracer.Outcome) []Endpoint {
	var ds []delivery
	for _, o := range outcomes {
		if o.Verdict != tracer.Accept || o.Endpoint == "" {
			continue
		}
		ds = append(ds, delivery{dst: o.Dst, local: o.Local, masquerade: o.Masquerade, probability: o.Probability})
	}
	return sumEndpoints(ds, x.in.Owners, x.in.NodeName)
}

// affinityOf finds ClientIP affinity on the service chains the packet went
// through: their "-m recent --rcheck" rules send a client seen within the
// timeout back to its endpoint (they miss for the new client traced here).
func affinityOf(rs *ruleset.Ruleset, hits []tracer.Hit) *Affinity {
	for _, h := range hits {
		if h.Rule == nil || h.Table != ruleset.TableNAT || !isPolicyChain(h.Chain) {
			continue
		}
		for _, rule := range rs.Chain(h.Table, h.Chain).Rules {
			for _, m := range rule.Matches {
				if r, ok := m.(*ruleset.RecentMatch); ok && r.Command == ruleset.RecentCheck && !r.Negate {
					return &Affinity{TimeoutSeconds: r.Seconds}
				}
			}
		}
	}
	return nil
}

// isPolicyChain reports whether chain picks among endpoints: a service's
// cluster-wide (KUBE-SVC-) or node-local (KUBE-SVL-) endpoint chain.
func isPolicyChain(chain string) bool {
	return strings.HasPrefix(chain, "KUBE-SVC-") || strings.HasPrefix(chain, "KUBE-SVL-")
}

// verdict decides how the packet ends and why.
func (x *iptablesExplainer) verdict(e *Explanation, outcomes []tracer.Outcome, primary tracer.Outcome) {
	switch {
	case len(e.Endpoints) == 1:
		e.Verdict = Delivered
		e.Reason = fmt.Sprintf("every new connection is sent to %s, the only endpoint this path can reach", e.Endpoints[0].Address)
		return
	case len(e.Endpoints) > 1:
		e.Verdict = Delivered
		e.Reason = fmt.Sprintf("each new connection is sent to one of %d endpoints, picked at random with the chances listed", len(e.Endpoints))
		return
	case primary.Verdict == tracer.Accept && e.Service != nil:
		e.Verdict = Delivered
		e.Reason = "the rules accept the packet without rewriting its destination"
		return
	case primary.Verdict == tracer.Accept:
		e.Verdict = NotAService
		e.Reason = x.notAServiceReason()
		return
	}
	e.Verdict = Dropped
	if primary.Verdict == tracer.Reject {
		e.Verdict = Rejected
	}
	if n := len(primary.Hits); n > 0 {
		e.Reason = x.refusalReason(primary.Hits[n-1])
	}
	if e.Reason == "" {
		e.Reason = "a rule outside kube-proxy's chains refuses it"
	}
}

// notAServiceReason words why no Service rule applies, singling out an
// unknown port on a cluster IP, which iptables mode does not refuse.
func (x *iptablesExplainer) notAServiceReason() string {
	if owners := x.clusterIPOwners(); len(owners) > 0 {
		return fmt.Sprintf("%s is the cluster IP of %s, which has no %s port %d; iptables mode has no rule for an unknown port "+
			"on a cluster IP, so the packet leaves untranslated and is routed like any other (usually to nowhere)",
			x.pkt.Dst.Addr(), strings.Join(owners, ", "), x.pkt.Proto, x.pkt.Dst.Port())
	}
	return fmt.Sprintf("no Service has %s port %d at %s; kube-proxy's rules let the packet pass untouched",
		x.pkt.Proto, x.pkt.Dst.Port(), x.pkt.Dst.Addr())
}

// masquerade says whether and why the packet's source is replaced, from the
// rule that jumped to KUBE-MARK-MASQ on each delivered path.
func (x *iptablesExplainer) masquerade(e *Explanation, outcomes []tracer.Outcome) {
	var masqueraded, kept []string
	reasons := map[string]bool{}
	var reasonList []string
	for _, o := range outcomes {
		if o.Verdict != tracer.Accept || o.Endpoint == "" {
			continue
		}
		if !o.Masquerade {
			kept = append(kept, o.Endpoint)
			continue
		}
		masqueraded = append(masqueraded, o.Endpoint)
		if r := x.markReason(o.Hits); r != "" && !reasons[r] {
			reasons[r] = true
			reasonList = append(reasonList, r)
		}
	}
	e.Masquerade = len(masqueraded) > 0
	switch {
	case e.Masquerade && len(kept) > 0:
		e.MasqueradeReason = fmt.Sprintf("only on the way to %s: %s; to the other endpoints the client's address %s is kept",
			strings.Join(masqueraded, ", "), strings.Join(reasonList, "; "), x.pkt.Src)
	case e.Masquerade:
		e.MasqueradeReason = strings.Join(reasonList, "; ") +
			"; the endpoint sees this node's address as the source, and replies come back through this node"
	case e.Verdict == Delivered:
		e.MasqueradeReason = fmt.Sprintf("no rule marks the packet for masquerading, so the endpoint sees the client's own address %s", x.pkt.Src)
	}
}

// markReason words the rule that marked a delivered packet for masquerading.
func (x *iptablesExplainer) markReason(hits []tracer.Hit) string {
	for _, h := range hits {
		if h.Rule == nil || h.Rule.Target.Chain != iptables.ChainMarkMasq {
			continue
		}
		return x.masqRuleWords(h)
	}
	return "a rule outside kube-proxy's chains asked for it"
}
