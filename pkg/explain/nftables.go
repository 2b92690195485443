package explain

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// NFTablesInput is what the nftables mode reads: the node's tables of the
// packet's family, as nftmodel parses them, and what is known about the node
// and the cluster.
type NFTablesInput struct {
	// Rules are the tables: a rendered table applied to a knftables.Fake and
	// dumped, or `nft list table` output.
	Rules *nftmodel.Ruleset
	// NodeAddrs are the node's own addresses: `fib daddr type local` and the
	// input-versus-forward choice use them.
	NodeAddrs []netip.Addr
	// NodeName is this node's name, to tell local endpoints apart; optional.
	NodeName string
	// Owners names the pod and node behind endpoint addresses; optional.
	Owners map[netip.Addr]Owner
	// Snapshot holds the Services, when known; optional. It tells an
	// external IP from a load-balancer IP (both jump to a Service's
	// external- chain) and names the Service of an unknown port.
	Snapshot *endpoints.Snapshot
	// PodInterface and OutsideInterface are the interfaces packets from a
	// pod or from outside arrive on; kube-proxy's nftables rules do not
	// match on them, but other tables in a live dump may.
	PodInterface, OutsideInterface string
}

// nftExplainer holds one explanation's inputs while it is worked out.
type nftExplainer struct {
	in  NFTablesInput
	pkt Packet
}

// NFTables explains what the tables in in do with pkt, by tracing it through
// them with nftmodel (every `numgen random` choice explored, session-affinity
// sets empty as for a client never seen before) and wording each rule that
// matched.
func NFTables(in NFTablesInput, pkt Packet) (*Explanation, error) {
	if in.Rules == nil {
		return nil, fmt.Errorf("no nftables rules to explain %s with", pkt)
	}
	origin, inIface := nftmodel.FromPodOrExternal, in.OutsideInterface
	switch pkt.From {
	case FromNode:
		origin, inIface = nftmodel.FromLocalProcess, ""
	case FromPod:
		inIface = in.PodInterface
	case FromOutside:
		if inIface == "" {
			inIface = "eth0"
		}
	default:
		return nil, fmt.Errorf("packet %s: unknown origin %q", pkt, pkt.From)
	}
	result, err := nftmodel.Trace(in.Rules, nftmodel.Node{LocalAddrs: in.NodeAddrs}, nftmodel.Packet{
		Src: pkt.Src, Dst: pkt.Dst.Addr(), Proto: pkt.Proto, SrcPort: 40000, DstPort: int(pkt.Dst.Port()),
		Origin: origin, InIface: inIface,
	}, nftmodel.Options{})
	if err != nil {
		return nil, err
	}
	x := &nftExplainer{in: in, pkt: pkt}
	return x.explain(result), nil
}

func (x *nftExplainer) explain(result nftmodel.Result) *Explanation {
	e := &Explanation{Mode: "nftables", Packet: x.pkt, Steps: []Step{}}
	primary := nftPrimaryOutcome(result.Outcomes)
	for _, h := range primary.Hits {
		if svc, ok := x.serviceOfHit(h); ok {
			e.Service = &svc
			break
		}
	}
	e.Endpoints = x.endpoints(result.Outcomes)
	e.Steps = x.steps(primary.Hits, len(e.Endpoints), primary.Endpoint)
	e.Affinity = x.affinityOf(primary.Hits)
	x.verdict(e, primary)
	x.masquerade(e, result.Outcomes)
	return e
}

// nftPrimaryOutcome is the outcome whose path the Steps describe: the first
// delivered one (nftmodel sorts outcomes by endpoint), else the first.
func nftPrimaryOutcome(outcomes []nftmodel.Outcome) nftmodel.Outcome {
	for _, o := range outcomes {
		if o.Fate == nftmodel.Accept && o.Endpoint != "" {
			return o
		}
	}
	for _, o := range outcomes {
		if o.Fate == nftmodel.Accept {
			return o
		}
	}
	if len(outcomes) == 0 {
		return nftmodel.Outcome{}
	}
	return outcomes[0]
}

// endpoints sums the chances of the accepted, DNATed outcomes by endpoint:
// a `numgen random mod N` map or vmap makes each of its N entries a
// candidate with chance 1/N.
func (x *nftExplainer) endpoints(outcomes []nftmodel.Outcome) []Endpoint {
	var ds []delivery
	for _, o := range outcomes {
		if o.Fate != nftmodel.Accept || o.Endpoint == "" {
			continue
		}
		ds = append(ds, delivery{dst: o.Dst, local: o.Local, masquerade: o.Masquerade, probability: o.Probability})
	}
	return sumEndpoints(ds, x.in.Owners, x.in.NodeName)
}

// verdict decides how the packet ends and why.
func (x *nftExplainer) verdict(e *Explanation, primary nftmodel.Outcome) {
	switch {
	case len(e.Endpoints) == 1:
		e.Verdict = Delivered
		e.Reason = fmt.Sprintf("every new connection is sent to %s, the only endpoint this path can reach", e.Endpoints[0].Address)
		return
	case len(e.Endpoints) > 1:
		e.Verdict = Delivered
		e.Reason = fmt.Sprintf("each new connection is sent to one of %d endpoints, picked at random with the chances listed", len(e.Endpoints))
		return
	case primary.Fate == nftmodel.Accept && e.Service != nil:
		e.Verdict = Delivered
		e.Reason = "the rules accept the packet without rewriting its destination"
		return
	case primary.Fate == nftmodel.Accept:
		e.Verdict = NotAService
		e.Reason = fmt.Sprintf("no Service has %s port %d at %s; kube-proxy's rules let the packet pass untouched",
			x.pkt.Proto, x.pkt.Dst.Port(), x.pkt.Dst.Addr())
		return
	}
	e.Verdict = Dropped
	if primary.Fate == nftmodel.Reject {
		e.Verdict = Rejected
	}
	cause := ""
	if n := len(primary.Hits); n > 0 {
		cause = x.refusalCause(primary.Hits, n-1)
	}
	switch {
	case cause == "":
		e.Reason = "a rule outside kube-proxy's chains refuses it"
	case e.Verdict == Rejected:
		e.Reason = cause + ", so the connection is rejected (the client gets an error at once)"
	default:
		e.Reason = cause + ", so the packet is dropped (the client times out)"
	}
}

// masquerade says whether and why the packet's source is replaced, from the
// rules that set the masquerade mark, or the hairpin rule, on each delivered
// path.
func (x *nftExplainer) masquerade(e *Explanation, outcomes []nftmodel.Outcome) {
	var masqueraded, kept []string
	reasons := map[string]bool{}
	var reasonList []string
	for _, o := range outcomes {
		if o.Fate != nftmodel.Accept || o.Endpoint == "" {
			continue
		}
		if !o.Masquerade {
			kept = append(kept, o.Endpoint)
			continue
		}
		masqueraded = append(masqueraded, o.Endpoint)
		if r := x.masqReason(o.Hits); !reasons[r] {
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

// masqReason words why a masqueraded path was: the rule that set the mark,
// or the hairpin rule that masqueraded without one.
func (x *nftExplainer) masqReason(hits []nftmodel.Hit) string {
	for _, h := range hits {
		if h.Rule == nil {
			continue
		}
		if r := x.markWords(h); r != "" {
			return r
		}
	}
	for _, h := range hits {
		if h.Rule != nil && strings.Contains(h.Rule.Text, nftHairpinSet) {
			return hairpinWords(x.pkt.Src)
		}
	}
	return "a rule outside kube-proxy's chains asked for it"
}

func hairpinWords(src netip.Addr) string {
	return fmt.Sprintf("the source %s is the endpoint itself (hairpin): without masquerading, the pod's reply to itself would not pass back through the node to be un-NATed, and would be dropped", src)
}

// affinityOf finds ClientIP affinity on the service chain the packet went
// through: a rule there sends a source found in an affinity-… set back to
// its endpoint (it misses for the new client traced here), and the set's
// timeout is how long the client is remembered.
func (x *nftExplainer) affinityOf(hits []nftmodel.Hit) *Affinity {
	for _, h := range hits {
		if !strings.HasPrefix(h.Chain, "service-") {
			continue
		}
		t := x.table(h.Table)
		if t == nil || t.Chains[h.Chain] == nil {
			continue
		}
		for _, rule := range t.Chains[h.Chain].Rules {
			for _, word := range strings.Fields(rule.Text) {
				set := t.Sets[strings.TrimPrefix(word, "@")]
				if !strings.HasPrefix(word, "@affinity-") || set == nil {
					continue
				}
				if secs, ok := nftTimeoutSeconds(set.Timeout); ok {
					return &Affinity{TimeoutSeconds: secs}
				}
			}
		}
	}
	return nil
}

// nftTimeoutSeconds parses a set timeout as nft writes it ("600s", "3h",
// "1d2h", "10800").
func nftTimeoutSeconds(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	days := 0
	if d, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, false
		}
		days, s = n, rest
	}
	var dur time.Duration
	if s != "" {
		var err error
		if dur, err = time.ParseDuration(s); err != nil {
			return 0, false
		}
	}
	return days*86400 + int(dur.Seconds()), true
}

// table finds a hit's table ("ip kube-proxy").
func (x *nftExplainer) table(name string) *nftmodel.Table {
	family, tname, _ := strings.Cut(name, " ")
	return x.in.Rules.Table(family, tname)
}
