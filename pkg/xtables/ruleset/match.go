package ruleset

import "net/netip"

// Match is one "-m module" and its options. The concrete types below are the
// modules kube-proxy's iptables mode uses.
type Match interface {
	// Module returns the module name as given to -m.
	Module() string
}

// CommentMatch is "-m comment --comment TEXT". kube-proxy puts one on every
// rule; it never affects matching.
type CommentMatch struct {
	Comment string
}

// PortRange is a port or an inclusive "lo:hi" range.
type PortRange struct {
	Lo, Hi int
}

// Contains reports whether port lies in the range.
func (p PortRange) Contains(port int) bool { return port >= p.Lo && port <= p.Hi }

// PortMatch is "-m tcp", "-m udp" or "-m sctp" with --dport/--sport. The
// kernel refuses these unless the rule also has the same non-negated -p.
type PortMatch struct {
	Protocol  string
	DstPort   *PortRange
	NegateDst bool
	SrcPort   *PortRange
	NegateSrc bool
}

// MultiportMatch is "-m multiport" with --dports, --sports or --ports
// (either direction).
type MultiportMatch struct {
	// Direction is "dst", "src" or "any".
	Direction string
	Ports     []PortRange
	Negate    bool
}

// AddrTypeMatch is "-m addrtype"; kube-proxy uses --dst-type LOCAL to find
// NodePort traffic and --src-type LOCAL to recognise traffic from the node.
type AddrTypeMatch struct {
	SrcType   string
	NegateSrc bool
	DstType   string
	NegateDst bool
}

// ConntrackMatch is "-m conntrack --ctstate" or the older "-m state --state";
// Module tells which was written.
type ConntrackMatch struct {
	ModuleName string
	States     []string
	Negate     bool
}

// MarkMatch is "-m mark --mark VALUE[/MASK]": it matches when
// packetMark&Mask == Value.
type MarkMatch struct {
	Value, Mask uint32
	Negate      bool
}

// StatisticMatch is "-m statistic"; kube-proxy spreads new connections
// over endpoints with --mode random --probability P.
type StatisticMatch struct {
	// Mode is "random" or "nth".
	Mode        string
	Probability float64
	Every       int
	Packet      int
	Negate      bool
}

// RecentCommand is the action of a recent match.
type RecentCommand string

// The recent match commands; kube-proxy uses --rcheck in KUBE-SVC chains and
// --set in KUBE-SEP chains for ClientIP session affinity.
const (
	RecentSet    RecentCommand = "set"
	RecentCheck  RecentCommand = "rcheck"
	RecentUpdate RecentCommand = "update"
	RecentRemove RecentCommand = "remove"
)

// RecentMatch is "-m recent".
type RecentMatch struct {
	Name    string
	Command RecentCommand
	Seconds int
	Reap    bool
	// Dest is true for --rdest (default --rsource).
	Dest bool
	// Mask is --mask, which iptables-save always prints (255.255.255.255 by
	// default); the zero Addr when not given.
	Mask   netip.Addr
	Negate bool
}

// Module implements Match.
func (*CommentMatch) Module() string { return "comment" }

// Module implements Match.
func (m *PortMatch) Module() string { return m.Protocol }

// Module implements Match.
func (*MultiportMatch) Module() string { return "multiport" }

// Module implements Match.
func (*AddrTypeMatch) Module() string { return "addrtype" }

// Module implements Match.
func (m *ConntrackMatch) Module() string { return m.ModuleName }

// Module implements Match.
func (*MarkMatch) Module() string { return "mark" }

// Module implements Match.
func (*StatisticMatch) Module() string { return "statistic" }

// Module implements Match.
func (*RecentMatch) Module() string { return "recent" }

// SetMatch is "-m set --match-set NAME FLAGS": it matches when the packet's fields,
// picked by the comma-separated src/dst flags in order, form an entry of the ipset
// NAME. kube-proxy's IPVS mode matches its ipsets this way (dst,dst for ip,port sets,
// dst,dst,src for the hairpin and source-range sets). The ruleset does not know the
// sets' contents; it checks the syntax only.
type SetMatch struct {
	Name string
	// Flags are the directions, one per dimension of the set: "src" or "dst".
	Flags  []string
	Negate bool
}

// Module implements Match.
func (*SetMatch) Module() string { return "set" }
