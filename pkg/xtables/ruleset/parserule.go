package ruleset

import (
	"fmt"
	"strings"
)

// optionSink is a loaded match module or target that may claim options.
type optionSink interface {
	// option handles "--name values..." (negated when preceded by "!").
	// It returns how many values it consumed, or handled=false when the
	// option is not one of its own.
	option(name string, negate bool, values []string) (consumed int, handled bool, err error)
	// finish validates the module once the whole rule is read.
	finish(r *Rule) error
}

// ParseRule parses a rule specification: everything after "-A CHAIN".
// Unknown modules, options and stray arguments are errors naming them.
func ParseRule(spec string) (*Rule, error) {
	args, err := splitArgs(spec)
	if err != nil {
		return nil, err
	}
	return parseRuleArgs(strings.TrimSpace(spec), args)
}

func parseRuleArgs(spec string, args []string) (*Rule, error) {
	p := &ruleParser{rule: &Rule{Spec: spec, Args: args}}
	if err := p.parse(args); err != nil {
		return nil, err
	}
	return p.rule, nil
}

type ruleParser struct {
	rule    *Rule
	sinks   []optionSink // loaded match modules, in load order
	target  optionSink   // set after -j of a built-in target
	seenArg map[string]bool
}

// value returns args[i+1] or an error naming the option that lacks it.
func value(args []string, i int) (string, error) {
	if i+1 >= len(args) || args[i+1] == "" {
		return "", fmt.Errorf("option %q requires a value", args[i])
	}
	return args[i+1], nil
}

func (p *ruleParser) once(flag string) error {
	if p.seenArg == nil {
		p.seenArg = map[string]bool{}
	}
	if p.seenArg[flag] {
		return fmt.Errorf("multiple %s flags not allowed", flag)
	}
	p.seenArg[flag] = true
	return nil
}

func (p *ruleParser) parse(args []string) error {
	r := p.rule
	negate := false
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "!" {
			if negate {
				return fmt.Errorf("multiple consecutive \"!\" not allowed")
			}
			negate = true
			continue
		}
		switch arg {
		case "-p", "--protocol":
			val, err := value(args, i)
			if err != nil {
				return err
			}
			if err := p.once("-p"); err != nil {
				return err
			}
			proto := strings.ToLower(val)
			switch proto {
			case "tcp", "udp", "sctp", "icmp", "icmpv6", "ipv6-icmp", "all":
			default:
				return fmt.Errorf("unknown protocol %q", val)
			}
			r.Protocol, r.NegateProtocol = proto, negate
			i++
		case "-s", "--source", "-d", "--destination":
			val, err := value(args, i)
			if err != nil {
				return err
			}
			flag := "-" + string(strings.TrimLeft(arg, "-")[0])
			if err := p.once(flag); err != nil {
				return err
			}
			prefix, err := parsePrefix(val)
			if err != nil {
				return fmt.Errorf("bad address %q for %s", val, arg)
			}
			m := &AddrMatch{Prefix: prefix, Negate: negate}
			if flag == "-s" {
				r.Source = m
			} else {
				r.Destination = m
			}
			i++
		case "-i", "--in-interface", "-o", "--out-interface":
			val, err := value(args, i)
			if err != nil {
				return err
			}
			flag := "-i"
			if arg == "-o" || arg == "--out-interface" {
				flag = "-o"
			}
			if err := p.once(flag); err != nil {
				return err
			}
			if len(val) > 15 {
				return fmt.Errorf("interface name %q longer than 15 characters", val)
			}
			m := &IfaceMatch{Name: val, Negate: negate}
			if flag == "-i" {
				r.InIface = m
			} else {
				r.OutIface = m
			}
			i++
		case "-m", "--match":
			if negate {
				return fmt.Errorf("\"!\" not allowed before %s", arg)
			}
			val, err := value(args, i)
			if err != nil {
				return err
			}
			if err := p.load(val); err != nil {
				return err
			}
			i++
		case "-j", "--jump", "-g", "--goto":
			if negate {
				return fmt.Errorf("\"!\" not allowed before %s", arg)
			}
			val, err := value(args, i)
			if err != nil {
				return err
			}
			if err := p.once("-j/-g"); err != nil {
				return err
			}
			if err := p.setTarget(val, arg == "-g" || arg == "--goto"); err != nil {
				return err
			}
			i++
		default:
			if !strings.HasPrefix(arg, "--") {
				return fmt.Errorf("unexpected argument %q", arg)
			}
			consumed, err := p.option(arg, negate, args[i+1:])
			if err != nil {
				return err
			}
			i += consumed
		}
		negate = false
	}
	if negate {
		return fmt.Errorf("trailing \"!\"")
	}
	for _, sink := range p.sinks {
		if err := sink.finish(r); err != nil {
			return err
		}
	}
	if p.target != nil {
		if err := p.target.finish(r); err != nil {
			return err
		}
	}
	return nil
}

// option offers an option to the target, then to loaded modules (most recent
// first), then to the protocol's own module, which iptables loads implicitly
// for "-p tcp --dport 80".
func (p *ruleParser) option(name string, negate bool, values []string) (int, error) {
	candidates := make([]optionSink, 0, len(p.sinks)+1)
	if p.target != nil {
		candidates = append(candidates, p.target)
	}
	for i := len(p.sinks) - 1; i >= 0; i-- {
		candidates = append(candidates, p.sinks[i])
	}
	for _, sink := range candidates {
		consumed, handled, err := sink.option(name, negate, values)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if handled {
			return consumed, nil
		}
	}
	if proto := p.rule.Protocol; isPortProtocol(proto) && !p.loaded(proto) {
		if err := p.load(proto); err != nil {
			return 0, err
		}
		return p.option(name, negate, values)
	}
	return 0, fmt.Errorf("unknown option %q", name)
}

func (p *ruleParser) loaded(module string) bool {
	for _, m := range p.rule.Matches {
		if m.Module() == module {
			return true
		}
	}
	return false
}

func isPortProtocol(proto string) bool {
	return proto == "tcp" || proto == "udp" || proto == "sctp"
}

// load adds a match module for "-m name".
func (p *ruleParser) load(module string) error {
	var (
		match Match
		sink  optionSink
	)
	switch module {
	case "comment":
		m := &CommentMatch{}
		match, sink = m, (*commentParser)(m)
	case "tcp", "udp", "sctp":
		m := &PortMatch{Protocol: module}
		match, sink = m, (*portParser)(m)
	case "multiport":
		m := &MultiportMatch{}
		match, sink = m, (*multiportParser)(m)
	case "addrtype":
		m := &AddrTypeMatch{}
		match, sink = m, (*addrTypeParser)(m)
	case "conntrack", "state":
		m := &ConntrackMatch{ModuleName: module}
		match, sink = m, (*conntrackParser)(m)
	case "mark":
		m := &MarkMatch{}
		match, sink = m, &markParser{m: m}
	case "statistic":
		m := &StatisticMatch{}
		match, sink = m, (*statisticParser)(m)
	case "recent":
		m := &RecentMatch{}
		match, sink = m, (*recentParser)(m)
	case "set":
		m := &SetMatch{}
		match, sink = m, (*setParser)(m)
	default:
		return fmt.Errorf("unknown match module %q", module)
	}
	p.rule.Matches = append(p.rule.Matches, match)
	p.sinks = append(p.sinks, sink)
	return nil
}

func (p *ruleParser) setTarget(name string, isGoto bool) error {
	t := &p.rule.Target
	t.Name = name
	if kind, ok := targetNames[name]; ok {
		if isGoto {
			return fmt.Errorf("-g needs a chain, not the built-in target %s", name)
		}
		t.Kind = kind
		p.target = &targetParser{t: t}
		return nil
	}
	if err := checkChainName(name); err != nil {
		return err
	}
	t.Chain = name
	t.Kind = TargetJump
	if isGoto {
		t.Kind = TargetGoto
	}
	return nil
}

// checkChainName applies the kernel's and iptables' limits on chain names.
func checkChainName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty chain name")
	case len(name) > maxChainNameLen:
		return fmt.Errorf("chain name %q longer than %d characters", name, maxChainNameLen)
	case name[0] == '-' || name[0] == '!':
		return fmt.Errorf("invalid chain name %q", name)
	case strings.ContainsAny(name, " \t\"'"):
		return fmt.Errorf("invalid chain name %q", name)
	}
	return nil
}
