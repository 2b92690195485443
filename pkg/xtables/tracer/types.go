package tracer

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// Origin says where a packet enters the node's netfilter hooks.
type Origin int

const (
	// FromPodOrExternal packets arrive on an interface and start in
	// PREROUTING.
	FromPodOrExternal Origin = iota
	// FromLocalProcess packets are sent by a process on the node (or a
	// host-network pod) and start in OUTPUT.
	FromLocalProcess
)

// String returns the origin's name.
func (o Origin) String() string {
	if o == FromLocalProcess {
		return "local-process"
	}
	return "pod-or-external"
}

// Packet is the first packet of a new connection.
type Packet struct {
	Src, Dst netip.Addr
	// Proto is "tcp", "udp" or "sctp".
	Proto   string
	SrcPort int
	DstPort int
	Origin  Origin
	// InIface is the arrival interface (for -i); empty for local packets.
	InIface string
	// OutIface is the interface -o compares against; empty means unknown,
	// so only negated -o matches.
	OutIface string
}

// String formats the packet for failure messages.
func (p Packet) String() string {
	return fmt.Sprintf("%s %s -> %s (%s)", p.Proto, p.Src, netip.AddrPortFrom(p.Dst, uint16(p.DstPort)), p.Origin)
}

// Node is what the tracer needs to know about the node.
type Node struct {
	// LocalAddrs are the node's addresses; with loopback they make up
	// "-m addrtype --dst-type LOCAL" and decide INPUT versus FORWARD.
	LocalAddrs []netip.Addr
}

// IsLocal reports whether addr is a local address of the node.
func (n Node) IsLocal(addr netip.Addr) bool {
	if addr.IsLoopback() {
		return true
	}
	for _, local := range n.LocalAddrs {
		if local == addr {
			return true
		}
	}
	return false
}

// Options tune a trace.
type Options struct {
	// AffinityHit is a -m recent list name that is treated as holding the
	// packet's source, so its --rcheck/--update matches; every other list
	// is empty, as for a client never seen before.
	AffinityHit string
	// MaxOutcomes bounds the number of random branches explored; 0 means
	// 4096.
	MaxOutcomes int
	// IPSets are the contents of the ipsets that "-m set" matches name, by
	// set name.
	IPSets map[string]*IPSet
	// IPVS, when set, is the kernel's virtual server that owns the packet's
	// destination: the packet is handed to it and DNATed to IPVS.Dest.
	IPVS *IPVS
}

// IPVS is the virtual server a packet meets, with the real server its scheduler
// picked. The kernel's IPVS hooks sit in LOCAL_IN after the filter table (a
// packet that arrives for a VIP) and in LOCAL_OUT after the nat table (a packet
// a local process sends); there the connection is DNATed to the real server and
// the packet leaves through POSTROUTING, where masquerading is decided.
type IPVS struct {
	// VirtualServer names the virtual server in the trace, as "TCP/10.96.0.1:80".
	VirtualServer string
	// Dest is the real server picked. When it is not valid the virtual server
	// has none: the kernel answers ICMP port unreachable (ip_vs_leave), so the
	// packet is rejected.
	Dest netip.AddrPort
}

// Verdict is how a traced packet ends.
type Verdict int

const (
	// Accept: the packet reaches a local socket or leaves the node.
	Accept Verdict = iota
	// Drop: a DROP rule or a DROP policy.
	Drop
	// Reject: a REJECT rule.
	Reject
)

// String returns ACCEPT, DROP or REJECT.
func (v Verdict) String() string {
	return [...]string{"ACCEPT", "DROP", "REJECT"}[v]
}

// Outcome is one way a packet's trace can end.
type Outcome struct {
	Verdict Verdict
	// Endpoint is the DNAT destination as "ip:port" ("[ip6]:port" for
	// IPv6), or "" when no DNAT happened.
	Endpoint string
	// Dst is the final destination address and port.
	Dst netip.AddrPort
	// Local is true when the final destination is on the node (the packet
	// went through INPUT rather than FORWARD).
	Local bool
	// Masquerade is true when a MASQUERADE rule was hit in POSTROUTING.
	Masquerade bool
	// Mark is the packet mark at the end of the trace.
	Mark uint32
	// Probability is the product of the random choices taken.
	Probability float64
	// Trace lists the rules that matched and the chains that ended, as
	// "table/CHAIN: rule" lines.
	Trace []string
	// Hits are the same events as Trace, structured, for callers that word
	// them (switchyard explain).
	Hits []Hit
}

// Hit is one event of a trace: a rule that matched, or a built-in chain that
// ended with its policy.
type Hit struct {
	Table, Chain string
	// Rule is the rule that matched, or nil when the built-in chain ended
	// and its Policy applied.
	Rule *ruleset.Rule
	// Policy is the built-in chain's policy when Rule is nil.
	Policy string
	// IPVS is set, with Table "ipvs", for the virtual server's step: its Dest is
	// the real server picked, or not valid when it has none.
	IPVS *IPVS
}

// String formats the outcome on one line.
func (o Outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s p=%.4f", o.Verdict, o.Probability)
	if o.Endpoint != "" {
		fmt.Fprintf(&b, " endpoint=%s", o.Endpoint)
	}
	if o.Masquerade {
		b.WriteString(" masquerade")
	}
	if o.Local {
		b.WriteString(" local")
	}
	return b.String()
}

// Result aggregates every outcome of one packet.
type Result struct {
	Packet   Packet
	Outcomes []Outcome
	// Endpoints are the sorted, de-duplicated DNAT destinations of the
	// accepted outcomes: the endpoints the packet can reach.
	Endpoints []string
	// Masquerade is true when any accepted outcome was masqueraded.
	Masquerade bool
}

// Verdicts returns the sorted, de-duplicated verdicts of all outcomes.
func (r Result) Verdicts() []Verdict {
	seen := map[Verdict]bool{}
	var verdicts []Verdict
	for _, v := range []Verdict{Accept, Drop, Reject} {
		for _, o := range r.Outcomes {
			if o.Verdict == v && !seen[v] {
				seen[v] = true
				verdicts = append(verdicts, v)
			}
		}
	}
	return verdicts
}

// String formats the result with every outcome's trace, for test failure
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
