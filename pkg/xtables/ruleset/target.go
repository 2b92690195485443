package ruleset

import "net/netip"

// TargetKind says what a rule does when it matches.
type TargetKind int

const (
	// TargetNone: no -j; the rule only counts packets (kube-proxy's
	// "other traffic ... will be dropped by KUBE-PROXY-FIREWALL" rule).
	TargetNone TargetKind = iota
	// TargetJump: -j to a user chain.
	TargetJump
	// TargetGoto: -g to a user chain; a RETURN there returns to the caller
	// of the chain holding the -g rule.
	TargetGoto
	TargetAccept
	TargetDrop
	TargetReturn
	TargetReject
	TargetDNAT
	TargetMasquerade
	TargetMark
)

var targetNames = map[string]TargetKind{
	"ACCEPT":     TargetAccept,
	"DROP":       TargetDrop,
	"RETURN":     TargetReturn,
	"REJECT":     TargetReject,
	"DNAT":       TargetDNAT,
	"MASQUERADE": TargetMasquerade,
	"MARK":       TargetMark,
}

// MarkOp is how a MARK target changes the packet mark.
type MarkOp string

// MARK target operations. iptables-save prints all of them as --set-xmark;
// kube-proxy writes --or-mark and --xor-mark.
const (
	MarkSetXMark MarkOp = "set-xmark" // mark = (mark &^ Mask) ^ Value
	MarkSetMark  MarkOp = "set-mark"  // mark = (mark &^ Mask) | Value
	MarkOr       MarkOp = "or-mark"
	MarkXor      MarkOp = "xor-mark"
	MarkAnd      MarkOp = "and-mark"
)

// Target is a rule's action with its options.
type Target struct {
	Kind TargetKind
	// Name is the word after -j/-g: a built-in target or a chain.
	Name string
	// Chain is set for TargetJump and TargetGoto.
	Chain string

	// DNAT --to-destination: ToAddr, and ToPort (0 when no port given, so
	// the destination port is unchanged).
	ToAddr netip.Addr
	ToPort int

	// MARK: Op, Value, Mask.
	MarkOp    MarkOp
	MarkValue uint32
	MarkMask  uint32

	// RejectWith is REJECT's --reject-with ("" for the default,
	// icmp-port-unreachable).
	RejectWith string

	// Random and RandomFully are MASQUERADE's (or DNAT's --random) flags.
	Random      bool
	RandomFully bool
}

// Apply returns mark after a MARK target.
func (t *Target) Apply(mark uint32) uint32 {
	switch t.MarkOp {
	case MarkSetXMark:
		return (mark &^ t.MarkMask) ^ t.MarkValue
	case MarkSetMark:
		return (mark &^ t.MarkMask) | t.MarkValue
	case MarkOr:
		return mark | t.MarkValue
	case MarkXor:
		return mark ^ t.MarkValue
	case MarkAnd:
		return mark & t.MarkValue
	}
	return mark
}
