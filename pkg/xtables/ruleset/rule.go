package ruleset

import (
	"fmt"
	"net/netip"
)

// Rule is one parsed rule. It is immutable once parsed: Apply, Clone and the
// tracer share Rule values between rulesets.
type Rule struct {
	// Spec is the rule specification as written, after "-A CHAIN"
	// (trimmed), kept for error messages and traces.
	Spec string
	// Args is Spec split into arguments; Save prints these re-quoted.
	Args []string

	// Protocol is the -p value in lower case ("" when absent).
	Protocol       string
	NegateProtocol bool
	// Source and Destination are -s and -d; nil when absent.
	Source      *AddrMatch
	Destination *AddrMatch
	// InIface and OutIface are -i and -o; nil when absent.
	InIface  *IfaceMatch
	OutIface *IfaceMatch

	// Matches are the -m modules in the order they were loaded, including
	// protocol matches loaded implicitly by "-p tcp --dport N".
	Matches []Match

	// Target is what -j or -g names; its Kind is TargetNone without either.
	Target Target
}

// String returns the rule specification in canonical quoting.
func (r *Rule) String() string { return joinArgs(r.Args) }

// Comment returns the text of the rule's first comment match, or "".
func (r *Rule) Comment() string {
	for _, m := range r.Matches {
		if c, ok := m.(*CommentMatch); ok {
			return c.Comment
		}
	}
	return ""
}

// key identifies a rule for -D: iptables compares parsed rules, so "-s
// 10.0.0.1" and "-s 10.0.0.1/32" are the same rule.
func (r *Rule) key() string {
	args := append([]string(nil), r.Args...)
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-s", "--source", "-d", "--destination":
			if p, err := parsePrefix(args[i+1]); err == nil {
				args[i+1] = p.String()
			}
			if args[i] == "--source" {
				args[i] = "-s"
			} else if args[i] == "--destination" {
				args[i] = "-d"
			}
		}
	}
	return joinArgs(args)
}

// AddrMatch is -s or -d, optionally negated. An address without a prefix
// length is a host prefix (/32 or /128), as iptables treats it.
type AddrMatch struct {
	Prefix netip.Prefix
	Negate bool
}

// IfaceMatch is -i or -o. A trailing "+" in Name is a wildcard, as in
// iptables.
type IfaceMatch struct {
	Name   string
	Negate bool
}

// Matches reports whether the interface name matches, honouring the "+"
// wildcard and negation. An empty iface (none known) matches only a negated
// rule.
func (m *IfaceMatch) Matches(iface string) bool {
	var hit bool
	if n := len(m.Name); n > 0 && m.Name[n-1] == '+' {
		hit = iface != "" && len(iface) >= n-1 && iface[:n-1] == m.Name[:n-1]
	} else {
		hit = iface == m.Name
	}
	return hit != m.Negate
}

func parsePrefix(value string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(value); err == nil {
		return p.Masked(), nil
	}
	addr, err := netip.ParseAddr(value)
	if err != nil {
		return netip.Prefix{}, err
	}
	if addr.Zone() != "" {
		// iptables parses addresses with inet_pton, which knows no zones:
		// "host/network `fe80::1%eth0' not found".
		return netip.Prefix{}, fmt.Errorf("host/network %q not found: zoned address", value)
	}
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// SameAs reports whether two rules are the same rule as iptables -C and -D
// see it: the same arguments, with "-s 10.0.0.1" equal to "-s 10.0.0.1/32".
func (r *Rule) SameAs(other *Rule) bool { return r.key() == other.key() }
