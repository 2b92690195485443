package nftmodel

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Data types the model knows, as nft names them in set declarations. Any
// other type is an error.
var knownTypes = map[string]bool{
	"ipv4_addr": true, "ipv6_addr": true, "inet_proto": true, "inet_service": true,
	"mark": true, "ifname": true, "ct_state": true, "ct_status": true,
	"fib_addrtype": true, "integer": true, "nf_proto": true,
}

var protocolNumbers = map[string]uint64{"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}

var symbolicValues = map[string][]string{
	"ct_state":     {"new", "established", "related", "invalid", "untracked"},
	"ct_status":    {"expected", "seen-reply", "assured", "confirmed", "snat", "dnat", "dying"},
	"fib_addrtype": {"unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit"},
	"nf_proto":     {"ipv4", "ipv6"},
}

// Value is one typed constant: an address, prefix or address range, a
// number or number range, or a symbol.
type Value struct {
	Type string
	// Exactly one group is set, by kind.
	Addr         netip.Addr
	Prefix       netip.Prefix
	RangeLo      netip.Addr
	RangeHi      netip.Addr
	Num, NumHi   uint64
	isNumRange   bool
	Sym          string
	text         string
	isPrefix     bool
	isAddrRange  bool
	isWildcarded bool
}

func (v Value) String() string { return v.text }

// parseValue reads word as a constant of data type typ.
func parseValue(typ, word string) (Value, error) {
	v := Value{Type: typ, text: word}
	switch typ {
	case "ipv4_addr", "ipv6_addr":
		want4 := typ == "ipv4_addr"
		check := func(a netip.Addr) error {
			if a.Is4() != want4 {
				return fmt.Errorf("%q is not an %s", word, typ)
			}
			return nil
		}
		switch {
		case strings.Contains(word, "/"):
			p, err := netip.ParsePrefix(word)
			if err != nil {
				return v, fmt.Errorf("%s %q: %w", typ, word, err)
			}
			v.Prefix, v.isPrefix = p.Masked(), true
			return v, check(p.Addr())
		case strings.Contains(word, "-"):
			lo, hi, _ := strings.Cut(word, "-")
			a, err1 := netip.ParseAddr(lo)
			b, err2 := netip.ParseAddr(hi)
			if err1 != nil || err2 != nil {
				return v, fmt.Errorf("%s range %q", typ, word)
			}
			v.RangeLo, v.RangeHi, v.isAddrRange = a, b, true
			return v, check(a)
		}
		a, err := netip.ParseAddr(word)
		if err != nil {
			return v, fmt.Errorf("%s %q: %w", typ, word, err)
		}
		v.Addr = a
		return v, check(a)
	case "inet_proto":
		if n, ok := protocolNumbers[word]; ok {
			v.Num = n
			return v, nil
		}
		return parseNumber(v, word, 255)
	case "inet_service":
		return parseNumber(v, word, 65535)
	case "mark", "integer":
		return parseNumber(v, word, 1<<32-1)
	case "ifname":
		v.Sym = strings.Trim(word, `"`)
		if strings.HasSuffix(v.Sym, "*") {
			v.Sym, v.isWildcarded = strings.TrimSuffix(v.Sym, "*"), true
		}
		return v, nil
	case "ct_state", "ct_status", "fib_addrtype", "nf_proto":
		for _, known := range symbolicValues[typ] {
			if word == known {
				v.Sym = word
				return v, nil
			}
		}
		return v, fmt.Errorf("%s: unknown value %q", typ, word)
	}
	return v, fmt.Errorf("unknown data type %q", typ)
}

func parseNumber(v Value, word string, limit uint64) (Value, error) {
	lo, hi, isRange := strings.Cut(word, "-")
	n, err := strconv.ParseUint(lo, 0, 64)
	if err != nil || n > limit {
		return v, fmt.Errorf("%s: bad number %q", v.Type, word)
	}
	v.Num = n
	if isRange {
		m, err := strconv.ParseUint(hi, 0, 64)
		if err != nil || m > limit || m < n {
			return v, fmt.Errorf("%s: bad range %q", v.Type, word)
		}
		v.NumHi, v.isNumRange = m, true
	}
	return v, nil
}

// datum is a packet's value of one key component at trace time.
type datum struct {
	addr netip.Addr
	num  uint64
	sym  string
	// syms holds several flags (ct status): a constant matches if it is
	// one of them.
	syms []string
}

// matches reports whether the packet's datum d equals (or falls into)
// constant v.
func (v Value) matches(d datum) bool {
	switch v.Type {
	case "ipv4_addr", "ipv6_addr":
		switch {
		case v.isPrefix:
			return v.Prefix.Contains(d.addr)
		case v.isAddrRange:
			return d.addr.Compare(v.RangeLo) >= 0 && d.addr.Compare(v.RangeHi) <= 0
		}
		return v.Addr == d.addr
	case "ifname":
		if v.isWildcarded {
			return strings.HasPrefix(d.sym, v.Sym)
		}
		return v.Sym == d.sym
	case "ct_state", "ct_status", "fib_addrtype", "nf_proto":
		if d.syms != nil {
			for _, s := range d.syms {
				if s == v.Sym {
					return true
				}
			}
			return false
		}
		return v.Sym == d.sym
	}
	if v.isNumRange {
		return d.num >= v.Num && d.num <= v.NumHi
	}
	return v.Num == d.num
}

// tupleMatches reports whether every component of key matches data.
func tupleMatches(key []Value, data []datum) bool {
	if len(key) != len(data) {
		return false
	}
	for i := range key {
		if !key[i].matches(data[i]) {
			return false
		}
	}
	return true
}
