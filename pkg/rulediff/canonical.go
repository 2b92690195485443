package rulediff

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// CanonicalRule rewrites a rule specification (what follows "-A CHAIN") into the form
// iptables-save prints it in, so that a rule as Switchyard renders it and the same
// rule read back from the kernel compare equal as text. The kernel does not keep the
// text it was given: iptables-save prints -s/-d/-i/-o/-p first, addresses with their
// prefix length, comments quoted, "-m tcp" after "-p tcp", the MARK target's
// --or-mark and --xor-mark as --set-xmark, a statistic probability as the kernel's
// 31-bit fraction, the recent match's defaults, REJECT's default --reject-with, and
// nfacct's name after two spaces. test/restore's TestCanonicalRulesMatchTheKernel
// checks the result against iptables-save of both backends.
//
// Only the matches and targets kube-proxy writes are rewritten; options of any other
// module are kept as written, so such a rule still compares equal to itself.
func CanonicalRule(spec string, family ruleset.Family) (string, error) {
	args, err := ruleset.SplitArgs(spec)
	if err != nil {
		return "", err
	}
	var r parsedRule
	if err := r.parse(args); err != nil {
		return "", fmt.Errorf("%q: %w", spec, err)
	}
	return r.format(family), nil
}

// option is one option with its values, possibly negated with "!".
type option struct {
	negate bool
	name   string
	values []string
}

// module is one "-m NAME" (or the protocol match "-p tcp --dport" loads implicitly)
// with its options in the order written.
type module struct {
	name    string
	options []option
}

// parsedRule is a rule split into the parts iptables-save prints in a fixed order.
type parsedRule struct {
	basic   map[string]option // -s, -d, -i, -o, -p
	modules []*module
	// target is what -j or -g (targetFlag) names, with its options.
	target     *module
	targetFlag string
}

var basicAliases = map[string]string{
	"-s": "-s", "--source": "-s", "--src": "-s",
	"-d": "-d", "--destination": "-d", "--dst": "-d",
	"-i": "-i", "--in-interface": "-i",
	"-o": "-o", "--out-interface": "-o",
	"-p": "-p", "--protocol": "-p",
}

// basicOrder is the order iptables-save prints the basic matches in.
var basicOrder = []string{"-s", "-d", "-i", "-o", "-p"}

func (r *parsedRule) parse(args []string) error {
	r.basic = map[string]option{}
	var current *module // the module (or target) options attach to
	negate := false
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "!" {
			negate = true
			continue
		}
		if short, ok := basicAliases[arg]; ok {
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs a value", arg)
			}
			i++
			if args[i] == "" {
				return fmt.Errorf("%s needs a value", arg)
			}
			r.basic[short] = option{negate: negate, name: short, values: []string{args[i]}}
			negate = false
			continue
		}
		switch arg {
		case "-m", "--match":
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs a module", arg)
			}
			i++
			if args[i] == "" {
				return fmt.Errorf("%s needs a module", arg)
			}
			current = &module{name: args[i]}
			r.modules = append(r.modules, current)
			continue
		case "-j", "--jump", "-g", "--goto":
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs a target", arg)
			}
			flag := "-j"
			if arg == "-g" || arg == "--goto" {
				flag = "-g"
			}
			i++
			if args[i] == "" {
				return fmt.Errorf("%s needs a target", arg)
			}
			r.target, r.targetFlag = &module{name: args[i]}, flag
			current = r.target
			continue
		}
		if !strings.HasPrefix(arg, "-") {
			return fmt.Errorf("unexpected argument %q", arg)
		}
		// "-p tcp --dport 80" loads the tcp match implicitly; iptables-save names it.
		if (arg == "--dport" || arg == "--sport" || arg == "--destination-port" || arg == "--source-port") &&
			(current == nil || current == r.target || !isPortModule(current.name)) {
			proto := strings.ToLower(r.basic["-p"].value())
			if !isPortModule(proto) || proto == "multiport" {
				return fmt.Errorf("%s needs -p tcp, udp or sctp", arg)
			}
			current = &module{name: proto}
			r.modules = append(r.modules, current)
		}
		if current == nil {
			return fmt.Errorf("option %s outside a match", arg)
		}
		opt := option{negate: negate, name: arg}
		negate = false
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && args[i+1] != "!" {
			i++
			opt.values = append(opt.values, args[i])
		}
		current.options = append(current.options, opt)
	}
	return nil
}

func (o option) value() string {
	if len(o.values) == 0 {
		return ""
	}
	return o.values[0]
}

func isPortModule(name string) bool {
	return name == "tcp" || name == "udp" || name == "sctp" || name == "multiport"
}

func (r *parsedRule) format(family ruleset.Family) string {
	var out []string
	add := func(negate bool, words ...string) {
		if negate {
			out = append(out, "!")
		}
		out = append(out, words...)
	}
	for _, name := range basicOrder {
		opt, ok := r.basic[name]
		if !ok {
			continue
		}
		v := opt.value()
		switch name {
		case "-s", "-d":
			v = canonicalPrefix(v)
		case "-p":
			v = strings.ToLower(v)
		}
		add(opt.negate, name, v)
	}
	for _, m := range r.modules {
		out = append(out, "-m", m.name)
		for _, opt := range canonicalOptions(m, family) {
			add(opt.negate, append([]string{opt.name}, opt.values...)...)
		}
	}
	if r.target != nil {
		out = append(out, r.targetFlag, r.target.name)
		for _, opt := range canonicalTarget(r.target, family) {
			add(opt.negate, append([]string{opt.name}, opt.values...)...)
		}
	}
	// iptables-save quotes every comment and FormatArgs only what needs it: both sides
	// of a comparison go through here, so only the arguments matter.
	return ruleset.FormatArgs(out)
}

// canonicalPrefix prints an address or prefix as iptables-save does: masked, with its
// length.
func canonicalPrefix(v string) string {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked().String()
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return v
}

// canonicalOptions returns a match's options in iptables-save's order and spelling.
func canonicalOptions(m *module, family ruleset.Family) []option {
	rename := func(aliases map[string]string) []option {
		out := make([]option, len(m.options))
		for i, o := range m.options {
			if n, ok := aliases[o.name]; ok {
				o.name = n
			}
			out[i] = o
		}
		return out
	}
	switch m.name {
	case "tcp", "udp", "sctp":
		opts := rename(map[string]string{"--source-port": "--sport", "--destination-port": "--dport"})
		return ordered(opts, "--sport", "--dport")
	case "multiport":
		opts := rename(map[string]string{"--source-ports": "--sports", "--destination-ports": "--dports"})
		return ordered(opts, "--sports", "--dports", "--ports")
	case "addrtype":
		return ordered(m.options, "--src-type", "--dst-type")
	case "conntrack":
		opts := slices.Clone(m.options)
		for i := range opts {
			if opts[i].name == "--ctstate" {
				opts[i].values = []string{orderStates(opts[i].value(), conntrackStates)}
			}
		}
		return opts
	case "state":
		opts := slices.Clone(m.options)
		for i := range opts {
			if opts[i].name == "--state" {
				opts[i].values = []string{orderStates(opts[i].value(), conntrackStates)}
			}
		}
		return opts
	case "mark":
		opts := slices.Clone(m.options)
		for i := range opts {
			if opts[i].name == "--mark" {
				opts[i].values = []string{canonicalMark(opts[i].value(), false)}
			}
		}
		return opts
	case "statistic":
		opts := slices.Clone(m.options)
		for i := range opts {
			if opts[i].name == "--probability" {
				opts[i].values = []string{canonicalProbability(opts[i].value())}
			}
		}
		return ordered(opts, "--mode", "--probability", "--every", "--packet")
	case "recent":
		return canonicalRecent(m.options, family)
	case "nfacct":
		return m.options
	}
	return m.options
}

// ordered sorts options into the order given by names, keeping the others after them
// in their written order.
func ordered(opts []option, names ...string) []option {
	rank := func(o option) int {
		if i := slices.Index(names, o.name); i >= 0 {
			return i
		}
		return len(names)
	}
	out := slices.Clone(opts)
	slices.SortStableFunc(out, func(a, b option) int { return rank(a) - rank(b) })
	return out
}

// conntrackStates is the order libxt_conntrack and libxt_state print states in.
var conntrackStates = []string{"INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT"}

func orderStates(v string, order []string) string {
	states := strings.Split(strings.ToUpper(v), ",")
	slices.SortStableFunc(states, func(a, b string) int {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		if ia < 0 {
			ia = len(order)
		}
		if ib < 0 {
			ib = len(order)
		}
		return ia - ib
	})
	return strings.Join(states, ",")
}

// canonicalMark prints VALUE[/MASK] in hexadecimal; a full mask is left out, as
// iptables-save does for the mark match.
func canonicalMark(v string, keepFullMask bool) string {
	value, mask, hasMask := strings.Cut(v, "/")
	val, err := strconv.ParseUint(value, 0, 32)
	if err != nil {
		return v
	}
	m := uint64(math.MaxUint32)
	if hasMask {
		if m, err = strconv.ParseUint(mask, 0, 32); err != nil {
			return v
		}
	}
	if m == math.MaxUint32 && !keepFullMask {
		return fmt.Sprintf("0x%x", val)
	}
	return fmt.Sprintf("0x%x/0x%x", val, m)
}

// canonicalProbability prints a statistic probability as iptables-save does: the
// kernel keeps round(p·2³¹) and libxt_statistic prints it back with %.11f.
func canonicalProbability(v string) string {
	p, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return v
	}
	fixed := math.Round(p * 0x80000000)
	return strconv.FormatFloat(fixed/0x80000000, 'f', 11, 64)
}

// canonicalRecent prints the recent match as libxt_recent saves it: the command,
// --seconds, --reap, --hitcount, --rttl, --name, --mask and the side, with the
// defaults (name DEFAULT, a full mask, --rsource) written out.
func canonicalRecent(opts []option, family ruleset.Family) []option {
	byName := map[string]option{}
	for _, o := range opts {
		byName[o.name] = o
	}
	var out []option
	for _, cmd := range []string{"--set", "--rcheck", "--update", "--remove"} {
		if o, ok := byName[cmd]; ok {
			out = append(out, o)
		}
	}
	for _, name := range []string{"--seconds", "--reap", "--hitcount", "--rttl"} {
		if o, ok := byName[name]; ok {
			out = append(out, o)
		}
	}
	name, ok := byName["--name"]
	if !ok {
		name = option{name: "--name", values: []string{"DEFAULT"}}
	}
	out = append(out, name)
	mask, ok := byName["--mask"]
	if !ok {
		full := "255.255.255.255"
		if family == ruleset.IPv6 {
			full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
		}
		mask = option{name: "--mask", values: []string{full}}
	}
	out = append(out, mask)
	if o, ok := byName["--rdest"]; ok {
		out = append(out, o)
	} else {
		out = append(out, option{name: "--rsource"})
	}
	return out
}

// canonicalTarget returns a target's options as iptables-save prints them.
func canonicalTarget(t *module, family ruleset.Family) []option {
	switch t.name {
	case "MARK":
		return canonicalMarkTarget(t.options)
	case "REJECT":
		if len(t.options) == 0 {
			with := "icmp-port-unreachable"
			if family == ruleset.IPv6 {
				with = "icmp6-port-unreachable"
			}
			return []option{{name: "--reject-with", values: []string{with}}}
		}
	}
	return t.options
}

// canonicalMarkTarget rewrites the MARK target's operations as the --set-xmark
// VALUE/MASK the kernel stores (libxt_MARK, revision 2).
func canonicalMarkTarget(opts []option) []option {
	if len(opts) != 1 {
		return opts
	}
	o := opts[0]
	value, mask, hasMask := strings.Cut(o.value(), "/")
	val, err := strconv.ParseUint(value, 0, 32)
	if err != nil {
		return opts
	}
	m := uint64(math.MaxUint32)
	if hasMask {
		if m, err = strconv.ParseUint(mask, 0, 32); err != nil {
			return opts
		}
	}
	switch o.name {
	case "--set-xmark":
	case "--set-mark":
		m |= val
	case "--or-mark":
		m = val
	case "--xor-mark":
		m = 0
	case "--and-mark":
		val, m = 0, ^val&math.MaxUint32
	default:
		return opts
	}
	return []option{{name: "--set-xmark", values: []string{fmt.Sprintf("0x%x/0x%x", val, m)}}}
}
