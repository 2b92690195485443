package nftmodel

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// Packet, Node, Origin and Fate are the iptables tracer's: a test or
// explain describes a packet and a node once for every mode.
type (
	// Packet is the first packet of a new connection.
	Packet = tracer.Packet
	// Node is what the model needs to know about the node: its local
	// addresses (fib daddr type local, and input versus forward).
	Node = tracer.Node
	// Origin says where a packet enters the hooks.
	Origin = tracer.Origin
	// Fate is how a traced packet ends: accepted, dropped or rejected.
	Fate = tracer.Verdict
)

// The origins and fates, re-exported.
const (
	FromPodOrExternal = tracer.FromPodOrExternal
	FromLocalProcess  = tracer.FromLocalProcess
	Accept            = tracer.Accept
	Drop              = tracer.Drop
	Reject            = tracer.Reject
)

// Options tune a trace.
type Options struct {
	// AffinityHit names a dynamic set (session affinity) that holds the
	// packet's source address, as after an earlier connection; every other
	// dynamic set is empty, as for a client never seen before.
	AffinityHit string
	// MaxOutcomes bounds the number of numgen branches explored; 0 means
	// 4096.
	MaxOutcomes int
}

// Hit is one event of a trace: a rule that matched (with the map element
// that decided, for a vmap or a dnat map), or a base chain that ended with
// its policy.
type Hit struct {
	// Table is "family name"; Chain the chain's name.
	Table, Chain string
	// Rule is the rule that matched, or nil when a base chain's policy
	// applied.
	Rule *Rule
	// Element is the map element a vmap or dnat lookup found, if any.
	Element *Element
	// Policy is the base chain's policy when Rule is nil.
	Policy string
}

// Outcome is one way a packet's trace can end.
type Outcome struct {
	Fate Fate
	// Endpoint is the DNAT destination as "ip:port" ("[ip6]:port"), or ""
	// when no DNAT happened.
	Endpoint string
	// Dst is the final destination address and port.
	Dst netip.AddrPort
	// Local is true when the final destination is on the node (input
	// rather than forward).
	Local bool
	// Masquerade is true when a masquerade statement ran in postrouting.
	Masquerade bool
	// Mark is the packet mark at the end.
	Mark uint32
	// Affinity names the dynamic set an `update` added the source to.
	Affinity string
	// Probability is the product of the numgen choices taken.
	Probability float64
	// Trace lists the rules that matched, as "family table/chain: rule".
	Trace []string
	// Hits are the same events, structured.
	Hits []Hit
}

// String formats the outcome on one line.
func (o Outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s p=%.4f", o.Fate, o.Probability)
	if o.Endpoint != "" {
		fmt.Fprintf(&b, " endpoint=%s", o.Endpoint)
	}
	if o.Masquerade {
		b.WriteString(" masquerade")
	}
	if o.Local {
		b.WriteString(" local")
	}
	if o.Affinity != "" {
		b.WriteString(" affinity=" + o.Affinity)
	}
	return b.String()
}

// Result is every outcome of one packet.
type Result struct {
	Packet   Packet
	Outcomes []Outcome
	// Endpoints are the sorted, de-duplicated DNAT destinations of the
	// accepted outcomes.
	Endpoints []string
	// Masquerade is true when any accepted outcome was masqueraded.
	Masquerade bool
}

// Fates returns the distinct fates of all outcomes, in the order Accept,
// Drop, Reject.
func (r Result) Fates() []Fate {
	var fates []Fate
	for _, f := range []Fate{Accept, Drop, Reject} {
		for _, o := range r.Outcomes {
			if o.Fate == f {
				fates = append(fates, f)
				break
			}
		}
	}
	return fates
}

// Probabilities sums the probability of each accepted endpoint ("" for an
// accepted packet that was not DNATed).
func (r Result) Probabilities() map[string]float64 {
	p := map[string]float64{}
	for _, o := range r.Outcomes {
		if o.Fate == Accept {
			p[o.Endpoint] += o.Probability
		}
	}
	return p
}

// String formats the result with every outcome's trace, for failure
// messages.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "packet %s: endpoints %v, masquerade %v\n", r.Packet, r.Endpoints, r.Masquerade)
	for i, o := range r.Outcomes {
		fmt.Fprintf(&b, "  outcome %d: %s\n", i, o)
		for _, line := range o.Trace {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	return b.String()
}
