package ruleset

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

var errNoNegate = errors.New("cannot be negated")

// need returns values[0] or an error when the option has no value.
func need(values []string) (string, error) {
	if len(values) == 0 || values[0] == "" {
		return "", errors.New("requires a value")
	}
	return values[0], nil
}

type commentParser CommentMatch

func (m *commentParser) option(name string, negate bool, values []string) (int, bool, error) {
	if name != "--comment" {
		return 0, false, nil
	}
	if negate {
		return 0, true, errNoNegate
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	if len(val) > maxCommentLen {
		return 0, true, fmt.Errorf("comment must be shorter than %d characters", maxCommentLen+1)
	}
	m.Comment = val
	return 1, true, nil
}

func (m *commentParser) finish(*Rule) error {
	if m.Comment == "" {
		return errors.New("comment match requires --comment")
	}
	return nil
}

func parsePort(s string) (int, error) {
	port, err := strconv.Atoi(s)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return port, nil
}

// parsePortRange parses "80" or "80:90".
func parsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	from, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	to := from
	if isRange {
		if to, err = parsePort(hi); err != nil {
			return PortRange{}, err
		}
		if to < from {
			return PortRange{}, fmt.Errorf("invalid port range %q", s)
		}
	}
	return PortRange{Lo: from, Hi: to}, nil
}

type portParser PortMatch

func (m *portParser) option(name string, negate bool, values []string) (int, bool, error) {
	var (
		dst  **PortRange
		flag *bool
	)
	switch name {
	case "--dport", "--destination-port":
		dst, flag = &m.DstPort, &m.NegateDst
	case "--sport", "--source-port":
		dst, flag = &m.SrcPort, &m.NegateSrc
	default:
		return 0, false, nil
	}
	if *dst != nil {
		return 0, true, errors.New("given twice")
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	pr, err := parsePortRange(val)
	if err != nil {
		return 0, true, err
	}
	*dst, *flag = &pr, negate
	return 1, true, nil
}

func (m *portParser) finish(r *Rule) error {
	// The kernel's tcp/udp/sctp match checkentry refuses rules whose -p is
	// not the same protocol ("-m tcp" needs "-p tcp").
	if r.Protocol != m.Protocol || r.NegateProtocol {
		return fmt.Errorf("%s match requires -p %s", m.Protocol, m.Protocol)
	}
	return nil
}

type multiportParser MultiportMatch

func (m *multiportParser) option(name string, negate bool, values []string) (int, bool, error) {
	var direction string
	switch name {
	case "--dports", "--destination-ports":
		direction = "dst"
	case "--sports", "--source-ports":
		direction = "src"
	case "--ports":
		direction = "any"
	default:
		return 0, false, nil
	}
	if m.Direction != "" {
		return 0, true, errors.New("multiport accepts only one of --dports, --sports, --ports")
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	parts := strings.Split(val, ",")
	if len(parts) > 15 {
		return 0, true, errors.New("too many ports specified (max 15)")
	}
	for _, part := range parts {
		pr, err := parsePortRange(part)
		if err != nil {
			return 0, true, err
		}
		m.Ports = append(m.Ports, pr)
	}
	m.Direction, m.Negate = direction, negate
	return 1, true, nil
}

func (m *multiportParser) finish(r *Rule) error {
	if m.Direction == "" {
		return errors.New("multiport match requires --dports, --sports or --ports")
	}
	if !isPortProtocol(r.Protocol) || r.NegateProtocol {
		return errors.New("multiport match requires -p tcp, udp or sctp")
	}
	return nil
}

// addrTypes are the names accepted by the addrtype match.
var addrTypes = map[string]bool{
	"UNSPEC": true, "UNICAST": true, "LOCAL": true, "BROADCAST": true,
	"ANYCAST": true, "MULTICAST": true, "BLACKHOLE": true, "UNREACHABLE": true,
	"PROHIBIT": true, "THROW": true, "NAT": true, "XRESOLVE": true,
}

type addrTypeParser AddrTypeMatch

func (m *addrTypeParser) option(name string, negate bool, values []string) (int, bool, error) {
	var (
		typ  *string
		flag *bool
	)
	switch name {
	case "--src-type":
		typ, flag = &m.SrcType, &m.NegateSrc
	case "--dst-type":
		typ, flag = &m.DstType, &m.NegateDst
	default:
		return 0, false, nil
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	for _, t := range strings.Split(val, ",") {
		if !addrTypes[t] {
			return 0, true, fmt.Errorf("unknown address type %q", t)
		}
	}
	*typ, *flag = val, negate
	return 1, true, nil
}

func (m *addrTypeParser) finish(*Rule) error {
	if m.SrcType == "" && m.DstType == "" {
		return errors.New("addrtype match requires --src-type or --dst-type")
	}
	return nil
}

var ctStates = map[string]bool{
	"NEW": true, "ESTABLISHED": true, "RELATED": true, "INVALID": true,
	"UNTRACKED": true, "SNAT": true, "DNAT": true,
}

type conntrackParser ConntrackMatch

func (m *conntrackParser) option(name string, negate bool, values []string) (int, bool, error) {
	want := "--ctstate"
	if m.ModuleName == "state" {
		want = "--state"
	}
	if name != want {
		return 0, false, nil
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	for _, state := range strings.Split(val, ",") {
		if !ctStates[state] || (m.ModuleName == "state" && (state == "SNAT" || state == "DNAT")) {
			return 0, true, fmt.Errorf("unknown state %q", state)
		}
		m.States = append(m.States, state)
	}
	m.Negate = negate
	return 1, true, nil
}

func (m *conntrackParser) finish(*Rule) error {
	if len(m.States) == 0 {
		return fmt.Errorf("%s match requires a state option", m.ModuleName)
	}
	return nil
}

// parseMark parses "VALUE[/MASK]" with defaultMask when no mask is given.
func parseMark(s string, defaultMask uint32) (value, mask uint32, err error) {
	v, m, hasMask := strings.Cut(s, "/")
	value64, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad mark value %q", s)
	}
	mask = defaultMask
	if hasMask {
		mask64, err := strconv.ParseUint(m, 0, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("bad mark mask %q", s)
		}
		mask = uint32(mask64)
	}
	return uint32(value64), mask, nil
}

type markParser struct {
	m   *MarkMatch
	set bool
}

func (m *markParser) option(name string, negate bool, values []string) (int, bool, error) {
	if name != "--mark" {
		return 0, false, nil
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	m.m.Value, m.m.Mask, err = parseMark(val, 0xffffffff)
	if err != nil {
		return 0, true, err
	}
	m.m.Negate, m.set = negate, true
	return 1, true, nil
}

func (m *markParser) finish(*Rule) error {
	if !m.set {
		return errors.New("mark match requires --mark")
	}
	return nil
}

type statisticParser StatisticMatch

func (m *statisticParser) option(name string, negate bool, values []string) (int, bool, error) {
	switch name {
	case "--mode", "--probability", "--every", "--packet":
	default:
		return 0, false, nil
	}
	val, err := need(values)
	if err != nil {
		return 0, true, err
	}
	switch name {
	case "--mode":
		if negate {
			return 0, true, errNoNegate
		}
		if val != "random" && val != "nth" {
			return 0, true, fmt.Errorf("bad mode %q", val)
		}
		m.Mode = val
	case "--probability":
		p, err := strconv.ParseFloat(val, 64)
		if err != nil || p < 0 || p > 1 {
			return 0, true, fmt.Errorf("bad probability %q", val)
		}
		m.Probability, m.Negate = p, negate
	case "--every", "--packet":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return 0, true, fmt.Errorf("bad value %q", val)
		}
		if name == "--every" {
			if n == 0 {
				return 0, true, fmt.Errorf("bad value %q", val)
			}
			m.Every, m.Negate = n, negate
		} else {
			m.Packet = n
		}
	}
	return 1, true, nil
}

func (m *statisticParser) finish(*Rule) error {
	switch m.Mode {
	case "random":
		if m.Every != 0 || m.Packet != 0 {
			return errors.New("--every and --packet need --mode nth")
		}
	case "nth":
		if m.Every == 0 {
			return errors.New("--mode nth requires --every")
		}
		if m.Packet >= m.Every {
			return errors.New("--packet must be less than --every")
		}
	default:
		return errors.New("statistic match requires --mode")
	}
	return nil
}

type recentParser RecentMatch

func (m *recentParser) option(name string, negate bool, values []string) (int, bool, error) {
	switch name {
	case "--set", "--rcheck", "--update", "--remove":
		if m.Command != "" {
			return 0, true, errors.New("only one of --set, --rcheck, --update, --remove allowed")
		}
		m.Command, m.Negate = RecentCommand(strings.TrimPrefix(name, "--")), negate
		return 0, true, nil
	case "--reap", "--rsource", "--rdest":
		if negate {
			return 0, true, errNoNegate
		}
		switch name {
		case "--reap":
			m.Reap = true
		case "--rdest":
			m.Dest = true
		}
		return 0, true, nil
	case "--name", "--seconds", "--mask":
		if negate {
			return 0, true, errNoNegate
		}
		val, err := need(values)
		if err != nil {
			return 0, true, err
		}
		if name == "--mask" {
			// iptables-save prints the mask on every recent match, so a
			// live node's dump has it even though kube-proxy never writes it.
			mask, err := netip.ParseAddr(val)
			if err != nil {
				return 0, true, fmt.Errorf("bad mask %q", val)
			}
			m.Mask = mask
			return 1, true, nil
		}
		if name == "--name" {
			m.Name = val
		} else {
			secs, err := strconv.Atoi(val)
			if err != nil || secs <= 0 {
				return 0, true, fmt.Errorf("bad value %q", val)
			}
			m.Seconds = secs
		}
		return 1, true, nil
	}
	return 0, false, nil
}

func (m *recentParser) finish(*Rule) error {
	if m.Command == "" {
		return errors.New("recent match requires one of --set, --rcheck, --update, --remove")
	}
	if m.Name == "" {
		// iptables defaults to DEFAULT, but kube-proxy always names the list
		// after the endpoint chain; a missing name is a renderer bug.
		return errors.New("recent match requires --name")
	}
	if (m.Seconds != 0 || m.Reap) && m.Command != RecentCheck && m.Command != RecentUpdate {
		return errors.New("--seconds and --reap need --rcheck or --update")
	}
	if m.Reap && m.Seconds == 0 {
		return errors.New("--reap needs --seconds")
	}
	return nil
}

// maxSetNameLen is IPSET_MAXNAMELEN (32) minus the terminating NUL.
const maxSetNameLen = 31

type setParser SetMatch

func (m *setParser) option(name string, negate bool, values []string) (int, bool, error) {
	if name != "--match-set" {
		return 0, false, nil
	}
	if m.Name != "" {
		return 0, true, errors.New("--match-set given twice")
	}
	if len(values) < 2 || values[0] == "" || values[1] == "" {
		return 0, true, errors.New("requires a set name and flags")
	}
	if len(values[0]) > maxSetNameLen || strings.HasPrefix(values[0], "-") {
		return 0, true, fmt.Errorf("invalid set name %q", values[0])
	}
	flags := strings.Split(values[1], ",")
	if len(flags) > 6 {
		return 0, true, fmt.Errorf("too many flags in %q (at most 6)", values[1])
	}
	for _, f := range flags {
		if f != "src" && f != "dst" {
			return 0, true, fmt.Errorf("bad flag %q in %q: want src or dst", f, values[1])
		}
	}
	m.Name, m.Flags, m.Negate = values[0], flags, negate
	return 2, true, nil
}

func (m *setParser) finish(*Rule) error {
	if m.Name == "" {
		return errors.New("set match requires --match-set")
	}
	return nil
}
