package xtables

import "fmt"

// DefaultMasqueradeBit is kube-proxy's default --iptables-masquerade-bit.
const DefaultMasqueradeBit = 14

// MasqueradeMark returns the packet mark for a masquerade bit, as the rules write it:
// bit 14 is "0x4000".
func MasqueradeMark(bit int) string {
	return fmt.Sprintf("%#x", uint32(1)<<bit)
}

// Rule is one rule of a chain, as the text after "-A CHAIN " in a restore payload.
type Rule struct {
	Chain Chain
	Spec  string
}

// MasqueradeRules are the rules of the chains kube-proxy writes in both modes, each
// list in chain order.
type MasqueradeRules struct {
	// NAT holds KUBE-POSTROUTING's rules, then KUBE-MARK-MASQ's.
	NAT []Rule
	// Filter holds KUBE-FORWARD's rules.
	Filter []Rule
}

// NewMasqueradeRules returns the KUBE-POSTROUTING, KUBE-MARK-MASQ and KUBE-FORWARD
// rules for a masquerade mark (see MasqueradeMark). A proxy's other chains jump to
// KUBE-MARK-MASQ to have a packet masqueraded on its way out; KUBE-POSTROUTING does
// it, and KUBE-FORWARD accepts forwarded service traffic that the host's FORWARD
// policy might drop.
//
// dropInvalid writes kube-proxy's "-m conntrack --ctstate INVALID -j DROP" at the top
// of KUBE-FORWARD: a packet conntrack marks INVALID (e.g. an out-of-window TCP
// segment) skips DNAT, reaches the client's peer with the service IP unchanged and
// can reset the connection (kubernetes#74839, #117924). kube-proxy's iptables mode
// leaves it out when the node sets nf_conntrack_tcp_be_liberal=1, which makes such
// packets valid instead; its IPVS mode never writes it.
func NewMasqueradeRules(mark string, dropInvalid bool) MasqueradeRules {
	var r MasqueradeRules
	r.NAT = []Rule{
		{ChainKubePostrouting, "-m mark ! --mark " + mark + "/" + mark + " -j RETURN"},
		// Clear the mark so that a packet re-entering the stack (e.g. through a
		// tunnel) is not masqueraded twice.
		{ChainKubePostrouting, "-j MARK --xor-mark " + mark},
		// --random-fully avoids the conntrack source-port race behind DNS 5 s
		// delays (kubernetes#56903).
		{ChainKubePostrouting, `-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`},
		{ChainKubeMarkMasq, "-j MARK --or-mark " + mark},
	}
	if dropInvalid {
		r.Filter = append(r.Filter, Rule{ChainKubeForward, "-m conntrack --ctstate INVALID -j DROP"})
	}
	r.Filter = append(r.Filter,
		Rule{ChainKubeForward, `-m comment --comment "kubernetes forwarding rules" -m mark --mark ` + mark + "/" + mark + " -j ACCEPT"},
		Rule{ChainKubeForward, `-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`},
	)
	return r
}
