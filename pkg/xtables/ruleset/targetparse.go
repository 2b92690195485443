package ruleset

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// targetParser reads the options of a built-in target.
type targetParser struct {
	t      *Target
	hasTo  bool
	marked bool
}

func (p *targetParser) option(name string, negate bool, values []string) (int, bool, error) {
	t := p.t
	switch {
	case t.Kind == TargetDNAT && name == "--to-destination":
		if p.hasTo {
			return 0, true, errors.New("given twice")
		}
		val, err := need(values)
		if err != nil {
			return 0, true, err
		}
		if t.ToAddr, t.ToPort, err = parseNATDestination(val); err != nil {
			return 0, true, err
		}
		p.hasTo = true
		return 1, true, nil
	case t.Kind == TargetDNAT && (name == "--random" || name == "--persistent"):
		t.Random = t.Random || name == "--random"
		return 0, true, nil
	case t.Kind == TargetMasquerade && name == "--random":
		t.Random = true
		return 0, true, nil
	case t.Kind == TargetMasquerade && name == "--random-fully":
		t.RandomFully = true
		return 0, true, nil
	case t.Kind == TargetReject && name == "--reject-with":
		val, err := need(values)
		if err != nil {
			return 0, true, err
		}
		if !rejectTypes[IPv4][val] && !rejectTypes[IPv6][val] {
			return 0, true, fmt.Errorf("unknown reject type %q", val)
		}
		t.RejectWith = val
		return 1, true, nil
	case t.Kind == TargetMark:
		op := MarkOp(strings.TrimPrefix(name, "--"))
		defaultMask := uint32(0xffffffff)
		switch op {
		case MarkSetXMark, MarkSetMark:
		case MarkOr, MarkXor, MarkAnd:
			defaultMask = 0
		default:
			return 0, false, nil
		}
		if p.marked {
			return 0, true, errors.New("MARK accepts only one operation")
		}
		val, err := need(values)
		if err != nil {
			return 0, true, err
		}
		if op != MarkSetXMark && op != MarkSetMark && strings.Contains(val, "/") {
			return 0, true, fmt.Errorf("%s takes no mask", name)
		}
		if t.MarkValue, t.MarkMask, err = parseMark(val, defaultMask); err != nil {
			return 0, true, err
		}
		t.MarkOp, p.marked = op, true
		return 1, true, nil
	}
	return 0, false, nil
}

func (p *targetParser) finish(*Rule) error {
	switch {
	case p.t.Kind == TargetDNAT && !p.hasTo:
		return errors.New("DNAT requires --to-destination")
	case p.t.Kind == TargetMark && !p.marked:
		return errors.New("MARK requires one of --set-xmark, --set-mark, --or-mark, --xor-mark, --and-mark")
	}
	return nil
}

// parseNATDestination parses DNAT's "ADDR", "ADDR:PORT" or "[ADDR6]:PORT".
func parseNATDestination(s string) (netip.Addr, int, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Addr().Zone() != "" {
			// As ip6tables-restore: Bad IP address "fe80::1%eth0".
			return netip.Addr{}, 0, fmt.Errorf("bad IP address in %q: zoned address", s)
		}
		if ap.Port() == 0 {
			return netip.Addr{}, 0, fmt.Errorf("invalid port in %q", s)
		}
		return ap.Addr(), int(ap.Port()), nil
	}
	if addr, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && !strings.Contains(addr.String(), "%") {
		return addr, 0, nil
	}
	if host, port, ok := strings.Cut(s, ":"); ok && !strings.Contains(port, ":") {
		if _, err := netip.ParseAddr(host); err == nil {
			if _, err := strconv.Atoi(port); err != nil {
				return netip.Addr{}, 0, fmt.Errorf("port ranges and names are not supported in %q", s)
			}
		}
	}
	return netip.Addr{}, 0, fmt.Errorf("bad --to-destination %q", s)
}

// rejectTypes are REJECT's --reject-with values per family.
var rejectTypes = map[Family]map[string]bool{
	IPv4: {
		"icmp-net-unreachable": true, "net-unreach": true,
		"icmp-host-unreachable": true, "host-unreach": true,
		"icmp-port-unreachable": true, "port-unreach": true,
		"icmp-proto-unreachable": true, "proto-unreach": true,
		"icmp-net-prohibited": true, "net-prohib": true,
		"icmp-host-prohibited": true, "host-prohib": true,
		"icmp-admin-prohibited": true, "admin-prohib": true,
		"tcp-reset": true,
	},
	IPv6: {
		"icmp6-no-route": true, "no-route": true,
		"icmp6-adm-prohibited": true, "adm-prohibited": true,
		"icmp6-addr-unreachable": true, "addr-unreach": true,
		"icmp6-port-unreachable": true, "port-unreach": true,
		"tcp-reset": true,
	},
}
