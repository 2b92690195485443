package tracer

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// IPSet is the contents of one ipset, for "-m set --match-set" matches.
type IPSet struct {
	// Type is the ipset type: hash:ip, hash:ip,port, hash:ip,port,ip,
	// hash:ip,port,net or bitmap:port.
	Type string
	// Members are the entries as `ipset save` prints them, such as
	// "10.96.0.1,tcp:80", "10.244.1.5,tcp:8080,10.244.1.5" or "30080".
	Members []string
}

// contains reports whether the packet fields picked by flags form a member of
// the set. As in the kernel, every dimension of the set needs a flag; extra
// flags are ignored.
func (s *IPSet) contains(pkt *Packet, flags []string) (bool, error) {
	_, dimsText, ok := strings.Cut(s.Type, ":")
	if !ok {
		return false, fmt.Errorf("ipset type %q has no dimensions", s.Type)
	}
	dims := strings.Split(dimsText, ",")
	if len(flags) < len(dims) {
		return false, nil
	}
	portOnly := s.Type == "bitmap:port"
	for _, member := range s.Members {
		fields := strings.Split(member, ",")
		if len(fields) != len(dims) {
			return false, fmt.Errorf("ipset member %q does not have the %d fields of %s", member, len(dims), s.Type)
		}
		hit := true
		for i, dim := range dims {
			addr, port := pkt.Dst, pkt.DstPort
			if flags[i] == "src" {
				addr, port = pkt.Src, pkt.SrcPort
			}
			same, err := fieldMatches(dim, fields[i], addr, pkt.Proto, port, portOnly)
			if err != nil {
				return false, fmt.Errorf("ipset member %q: %w", member, err)
			}
			if !same {
				hit = false
				break
			}
		}
		if hit {
			return true, nil
		}
	}
	return false, nil
}

// fieldMatches compares one dimension of a member with the packet's address or
// port. A port is "proto:port" in hash sets and a bare number in bitmap:port,
// which does not record the protocol.
func fieldMatches(dim, field string, addr netip.Addr, proto string, port int, portOnly bool) (bool, error) {
	switch dim {
	case "ip":
		ip, err := netip.ParseAddr(field)
		if err != nil {
			return false, err
		}
		return ip.Unmap() == addr.Unmap(), nil
	case "net":
		if !strings.Contains(field, "/") {
			ip, err := netip.ParseAddr(field)
			if err != nil {
				return false, err
			}
			return ip.Unmap() == addr.Unmap(), nil
		}
		p, err := netip.ParsePrefix(field)
		if err != nil {
			return false, err
		}
		return p.Contains(addr.Unmap()), nil
	case "port":
		memberProto, number := "tcp", field
		if !portOnly {
			if p, n, ok := strings.Cut(field, ":"); ok {
				memberProto, number = p, n
			}
		}
		n, err := strconv.Atoi(number)
		if err != nil {
			return false, err
		}
		return n == port && (portOnly || memberProto == proto), nil
	}
	return false, fmt.Errorf("ipset dimension %q is not supported", dim)
}

// matchSet evaluates "-m set --match-set NAME FLAGS" against Options.IPSets.
// A set the options do not hold is an error: silently missing would hide the
// rules that matter in IPVS mode.
func (w *walker) matchSet(m *ruleset.SetMatch) (bool, error) {
	set, ok := w.opts.IPSets[m.Name]
	if !ok {
		return false, fmt.Errorf("no contents given for ipset %s", m.Name)
	}
	hit, err := set.contains(&w.pkt, m.Flags)
	if err != nil {
		return false, fmt.Errorf("ipset %s: %w", m.Name, err)
	}
	return hit != m.Negate, nil
}
