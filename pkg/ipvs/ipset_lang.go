package ipvs

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ipsetCommand is one line of `ipset restore` input, the language every payload the
// Proxier builds is written in (RestoreFull, setDelta.restore): create, add, del,
// flush, swap, destroy, each optionally with -exist.
type ipsetCommand struct {
	// line is the 1-based line number, for errors.
	line int
	text string
	op   string
	set  string
	args []string
	// exist is ipset's -exist: creating an identical set, adding a present member,
	// deleting an absent member or destroying an absent set is not an error.
	exist bool
}

// ipsetArity is the least and most arguments after the set name, per command.
var ipsetArity = map[string][2]int{"create": {1, 99}, "add": {1, 1}, "del": {1, 1}, "flush": {0, 0}, "swap": {1, 1}, "destroy": {0, 0}}

// parseIPSetRestore splits restore input into commands; blank lines and comments are
// skipped. It checks only the shape of each line; the members are parsed by
// parseSetMember when the command is applied.
func parseIPSetRestore(payload []byte) ([]ipsetCommand, error) {
	var cmds []ipsetCommand
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		c := ipsetCommand{line: line, text: text}
		fields := strings.Fields(text)
		if fields[len(fields)-1] == "-exist" {
			c.exist, fields = true, fields[:len(fields)-1]
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("ipset restore: line %d %q: missing set name", line, text)
		}
		c.op, c.set, c.args = fields[0], fields[1], fields[2:]
		n, ok := ipsetArity[c.op]
		if !ok {
			return nil, fmt.Errorf("ipset restore: line %d %q: unknown command %q", line, text, c.op)
		}
		if len(c.args) < n[0] || len(c.args) > n[1] {
			return nil, fmt.Errorf("ipset restore: line %d %q: wrong number of arguments", line, text)
		}
		if len(c.set) > 31 {
			return nil, fmt.Errorf("ipset restore: line %d %q: set name longer than 31 characters", line, text)
		}
		cmds = append(cmds, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ipset restore: %w", err)
	}
	return cmds, nil
}

// createSpec is what a create line asks for.
type createSpec struct {
	typ SetType
	// inet6 is true for `family inet6`; hash types default to inet.
	inet6    bool
	maxElem  uint32
	portFrom uint16
	portTo   uint16
}

// parseCreate reads `create NAME TYPE [family F] [hashsize N] [maxelem N] [range A-B]`.
// hashsize is accepted and not passed on: it is only the initial size of the hash,
// which the kernel grows as needed, and Switchyard asks for the kernel's default.
func parseCreate(args []string) (createSpec, error) {
	s := createSpec{typ: SetType(args[0])}
	switch s.typ {
	case HashIP, HashIPPort, HashIPPortIP, HashIPPortNet, BitmapPort:
	default:
		return s, fmt.Errorf("unsupported set type %q", args[0])
	}
	opts := args[1:]
	if len(opts)%2 != 0 {
		return s, fmt.Errorf("option %s needs a value", opts[len(opts)-1])
	}
	for i := 0; i < len(opts); i += 2 {
		key, val := opts[i], opts[i+1]
		switch {
		case key == "family" && s.typ != BitmapPort && (val == "inet" || val == "inet6"):
			s.inet6 = val == "inet6"
		case key == "hashsize" && s.typ != BitmapPort:
			if _, err := strconv.ParseUint(val, 10, 32); err != nil {
				return s, fmt.Errorf("bad hashsize %q", val)
			}
		case key == "maxelem" && s.typ != BitmapPort:
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return s, fmt.Errorf("bad maxelem %q", val)
			}
			s.maxElem = uint32(n)
		case key == "range" && s.typ == BitmapPort:
			from, to, ok := strings.Cut(val, "-")
			a, errA := strconv.ParseUint(from, 10, 16)
			b, errB := strconv.ParseUint(to, 10, 16)
			if !ok || errA != nil || errB != nil || a > b {
				return s, fmt.Errorf("bad range %q", val)
			}
			s.portFrom, s.portTo = uint16(a), uint16(b)
		default:
			return s, fmt.Errorf("option %s %s is not valid for %s", key, val, s.typ)
		}
	}
	if s.typ == BitmapPort && s.portTo == 0 {
		return s, fmt.Errorf("bitmap:port needs a range")
	}
	return s, nil
}

// setMember is one member of any of kube-proxy's set types, in the fields the kernel
// takes: an address, a protocol and port, and a second address or network.
type setMember struct {
	IP      netip.Addr
	Proto   uint8
	Port    uint16
	HasPort bool
	// IP2 is the third part of hash:ip,port,ip and hash:ip,port,net members; Bits2 is
	// its prefix length, -1 for a bare address (the kernel's default, the host).
	IP2   netip.Addr
	Bits2 int
}

// protocols are the protocol names ipset prints and the Proxier writes.
var protocols = map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132}

// ipsetProtoName is the name ipset prints for a protocol number.
func ipsetProtoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// parseSetMember parses a member as `ipset restore` writes it: "10.0.0.1",
// "10.96.0.1,tcp:80", "10.0.0.1,tcp:80,10.0.0.1", "1.2.3.4,tcp:80,10.0.0.0/8", or a
// port ("30080" or "tcp:30080") for bitmap:port. The shape tells the type apart, so a
// delta of add and del lines needs no knowledge of the sets it touches.
func parseSetMember(s string) (setMember, error) {
	m := setMember{Bits2: -1}
	parts := strings.Split(s, ",")
	if len(parts) == 1 {
		if _, err := netip.ParseAddr(s); err != nil {
			if err := m.parsePort(s); err != nil {
				return m, fmt.Errorf("member %q: %w", s, err)
			}
			return m, nil
		}
	}
	ip, err := netip.ParseAddr(parts[0])
	if err != nil || ip.Zone() != "" {
		return m, fmt.Errorf("member %q: bad address %q", s, parts[0])
	}
	m.IP = ip
	if len(parts) >= 2 {
		if err := m.parsePort(parts[1]); err != nil {
			return m, fmt.Errorf("member %q: %w", s, err)
		}
	}
	if len(parts) == 3 {
		third := parts[2]
		if strings.Contains(third, "/") {
			p, err := netip.ParsePrefix(third)
			if err != nil || p.Bits() == 0 {
				return m, fmt.Errorf("member %q: bad network %q", s, third)
			}
			m.IP2, m.Bits2 = p.Addr(), p.Bits()
		} else {
			a, err := netip.ParseAddr(third)
			if err != nil {
				return m, fmt.Errorf("member %q: bad address %q", s, third)
			}
			m.IP2 = a
		}
		if m.IP2.Is4() != m.IP.Is4() {
			return m, fmt.Errorf("member %q: mixed address families", s)
		}
	}
	if len(parts) > 3 {
		return m, fmt.Errorf("member %q: too many parts", s)
	}
	return m, nil
}

// parsePort reads "tcp:80" or "80" (tcp, as ipset assumes).
func (m *setMember) parsePort(s string) error {
	name, port, ok := strings.Cut(s, ":")
	if !ok {
		name, port = "tcp", s
	}
	p, found := protocols[name]
	if !found {
		return fmt.Errorf("unknown protocol %q", name)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	m.Proto, m.Port, m.HasPort = p, uint16(n), true
	return nil
}

// format prints a member of a set of type typ as `ipset save` does, which is the
// form the Proxier renders and compares (a host network prints as a bare address).
func (m setMember) format(typ SetType) string {
	port := fmt.Sprintf("%s:%d", ipsetProtoName(m.Proto), m.Port)
	switch typ {
	case BitmapPort:
		return strconv.Itoa(int(m.Port))
	case HashIP:
		return m.IP.String()
	case HashIPPort:
		return m.IP.String() + "," + port
	default:
		third := m.IP2.String()
		if m.Bits2 >= 0 && m.Bits2 != m.IP2.BitLen() {
			third = netip.PrefixFrom(m.IP2, m.Bits2).String()
		}
		return m.IP.String() + "," + port + "," + third
	}
}
