package nftmodel

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// selector is one packet field an expression reads: "ip daddr",
// "meta l4proto", "numgen random mod 3", ...
type selector struct {
	name string
	// typ is the data type of its value.
	typ string
	// mod is numgen's modulus.
	mod uint64
}

// term is a selector with an optional bitwise operation ("meta mark &
// 0x4000").
type term struct {
	sel     selector
	op      string // "", "&", "|", "^"
	operand uint64
}

// expr is a concatenation of terms ("ip daddr . meta l4proto . th dport").
type expr []term

func (e expr) types() []string {
	types := make([]string, len(e))
	for i, t := range e {
		types[i] = t.sel.typ
	}
	return types
}

// stmtKind says what a statement does.
type stmtKind int

const (
	stmtMatch stmtKind = iota // expr [!=] constant, {anonymous set} or @set
	stmtVmap                  // expr vmap {…} or @map
	stmtVerdict
	stmtReject
	stmtCounter
	stmtMasquerade
	stmtDNAT
	stmtMarkSet
	stmtUpdate
)

// stmt is one statement of a rule.
type stmt struct {
	kind   stmtKind
	expr   expr
	negate bool
	// elements are an anonymous set or map's; setRef names a set or map.
	elements []*Element
	setRef   string
	// counterRef names the named counter of `counter name "NAME"`.
	counterRef string
	verdict    Verdict
	// dnat: a fixed destination, or (dnatMap) data chosen by expr from
	// elements: address, or address . port.
	dnatAddr netip.Addr
	dnatPort int
	dnatMap  bool
	// markSet: the new mark is expr's value (a term on meta mark) or a
	// constant.
	markConst uint64
}

// chainRefs returns the chains the statement may jump or go to.
func (s *stmt) chainRefs() []string {
	var refs []string
	if s.kind == stmtVerdict && (s.verdict.Kind == VerdictJump || s.verdict.Kind == VerdictGoto) {
		refs = append(refs, s.verdict.Chain)
	}
	if s.kind == stmtVmap {
		for _, e := range s.elements {
			if e.Verdict != nil && (e.Verdict.Kind == VerdictJump || e.Verdict.Kind == VerdictGoto) {
				refs = append(refs, e.Verdict.Chain)
			}
		}
	}
	return refs
}

// checkSet checks the named set a statement refers to fits it.
func (s *stmt) checkSet(set *Set) error {
	want := s.expr.types()
	if len(want) != len(set.KeyTypes) {
		return fmt.Errorf("%s has %d key components, the expression %d", set.Name, len(set.KeyTypes), len(want))
	}
	for i := range want {
		if !compatibleTypes(want[i], set.KeyTypes[i]) {
			return fmt.Errorf("%s: key component %d is %s, the expression gives %s", set.Name, i+1, set.KeyTypes[i], want[i])
		}
	}
	switch s.kind {
	case stmtVmap:
		if !set.Map || set.DataType != "verdict" {
			return fmt.Errorf("vmap on %s, which is not a verdict map", set.Name)
		}
	case stmtMatch, stmtUpdate:
		if set.Map {
			return fmt.Errorf("%s is a map, used as a set", set.Name)
		}
	}
	if s.kind == stmtUpdate && !set.Dynamic() {
		return fmt.Errorf("update of %s, which is not dynamic", set.Name)
	}
	return nil
}

func compatibleTypes(a, b string) bool {
	return a == b || (a == "integer" && b == "mark") || (a == "mark" && b == "integer")
}

// selectors maps the words starting a selector to how many words it takes
// and its type; numgen is handled apart.
var selectors = map[string]struct {
	words int
	typ   string
}{
	"ip saddr": {2, "ipv4_addr"}, "ip daddr": {2, "ipv4_addr"},
	"ip6 saddr": {2, "ipv6_addr"}, "ip6 daddr": {2, "ipv6_addr"},
	"meta l4proto": {2, "inet_proto"}, "meta mark": {2, "mark"}, "mark": {1, "mark"},
	"meta nfproto": {2, "nf_proto"},
	"meta iifname": {2, "ifname"}, "meta oifname": {2, "ifname"}, "iifname": {1, "ifname"}, "oifname": {1, "ifname"},
	"th dport": {2, "inet_service"}, "th sport": {2, "inet_service"},
	"tcp dport": {2, "inet_service"}, "tcp sport": {2, "inet_service"},
	"udp dport": {2, "inet_service"}, "udp sport": {2, "inet_service"},
	"sctp dport": {2, "inet_service"}, "sctp sport": {2, "inet_service"},
	"ct state": {2, "ct_state"}, "ct status": {2, "ct_status"},
	"fib saddr type": {3, "fib_addrtype"}, "fib daddr type": {3, "fib_addrtype"},
}

// parseSelector reads a selector at c, or returns ok false (consuming
// nothing) when none starts there.
func parseSelector(c *cursor) (selector, bool, error) {
	if c.is("numgen") {
		c.next()
		for _, w := range []string{"random", "mod"} {
			if err := c.expect(w); err != nil {
				return selector{}, false, err
			}
		}
		word, err := c.word("numgen modulus")
		if err != nil {
			return selector{}, false, err
		}
		mod, err := strconv.ParseUint(word, 10, 32)
		if err != nil || mod == 0 {
			return selector{}, false, c.errorf("bad numgen modulus %q", word)
		}
		return selector{name: "numgen random mod " + word, typ: "integer", mod: mod}, true, nil
	}
	for _, n := range []int{3, 2, 1} {
		var words []string
		for i := 0; i < n; i++ {
			t := c.peekAt(i)
			if t.kind != tokWord {
				break
			}
			words = append(words, t.text)
		}
		if len(words) != n {
			continue
		}
		name := strings.Join(words, " ")
		if s, ok := selectors[name]; ok && s.words == n {
			c.pos += n
			return selector{name: name, typ: s.typ}, true, nil
		}
	}
	return selector{}, false, nil
}

// bitOps maps nft's spellings of the bitwise operators to one.
var bitOps = map[string]string{"&": "&", "and": "&", "|": "|", "or": "|", "^": "^", "xor": "^"}

// parseExpr reads a concatenation of terms; ok is false when no selector
// starts at c.
func parseExpr(c *cursor) (expr, bool, error) {
	var e expr
	for {
		sel, ok, err := parseSelector(c)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			if len(e) == 0 {
				return nil, false, nil
			}
			return nil, false, c.errorf("want a selector after \".\", got %s", c.peek())
		}
		t := term{sel: sel}
		if op, isOp := bitOps[c.peek().text]; isOp && c.peek().kind == tokWord {
			if sel.typ != "mark" {
				return nil, false, c.errorf("bitwise %s on %s", op, sel.name)
			}
			c.next()
			word, err := c.word("operand")
			if err != nil {
				return nil, false, err
			}
			if t.operand, err = strconv.ParseUint(word, 0, 32); err != nil {
				return nil, false, c.errorf("bad operand %q", word)
			}
			t.op = op
		}
		e = append(e, t)
		if !c.is(".") {
			return e, true, nil
		}
		c.next()
	}
}

// parseRule reads statements up to the end of the line.
func parseRule(c *cursor) (*Rule, error) {
	start := c.pos
	r := &Rule{Line: c.peek().line}
	for !c.atEnd() {
		if c.accept("comment") {
			comment, err := c.str("comment")
			if err != nil {
				return nil, err
			}
			r.Comment = comment
			if !c.atEnd() {
				return nil, c.errorf("statement after the rule's comment: %s", c.peek())
			}
			break
		}
		s, err := parseStmt(c)
		if err != nil {
			return nil, err
		}
		r.stmts = append(r.stmts, s)
	}
	if len(r.stmts) == 0 {
		return nil, c.errorf("empty rule")
	}
	r.Text = joinTokens(c.tokens[start:c.pos])
	return r, nil
}

// joinTokens writes tokens back as text, one blank between words, "@" and
// "," attached as nft prints them.
func joinTokens(tokens []token) string {
	var b strings.Builder
	for i, t := range tokens {
		if t.kind == tokNewline {
			continue
		}
		if b.Len() > 0 && t.text != "," && (i == 0 || tokens[i-1].text != "@") {
			b.WriteByte(' ')
		}
		if t.kind == tokString {
			b.WriteString(strconv.Quote(t.text))
		} else {
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// parseStmt reads one statement.
func parseStmt(c *cursor) (*stmt, error) {
	t := c.peek()
	if t.kind != tokWord {
		return nil, c.errorf("want a statement, got %s", t)
	}
	switch t.text {
	case "accept", "drop", "return", "continue", "jump", "goto":
		v, err := parseVerdict(c)
		return &stmt{kind: stmtVerdict, verdict: v}, err
	case "reject":
		c.next()
		if c.accept("with") {
			// "with icmp type port-unreachable", "with icmpx type …",
			// "with tcp reset": all refuse the connection.
			kind, err := c.word("reject kind")
			if err != nil {
				return nil, err
			}
			switch kind {
			case "tcp":
				if err := c.expect("reset"); err != nil {
					return nil, err
				}
			case "icmp", "icmpv6", "icmpx":
				if err := c.expect("type"); err != nil {
					return nil, err
				}
				if _, err := c.word("icmp type"); err != nil {
					return nil, err
				}
			default:
				return nil, c.errorf("unknown reject kind %q", kind)
			}
		}
		return &stmt{kind: stmtReject}, nil
	case "counter":
		c.next()
		switch {
		case c.accept("packets"):
			for _, w := range []string{"", "bytes", ""} {
				if w != "" {
					if err := c.expect(w); err != nil {
						return nil, err
					}
					continue
				}
				if _, err := c.word("count"); err != nil {
					return nil, err
				}
			}
		case c.accept("name"):
			name := ""
			if c.peek().kind == tokString {
				name = c.next().text
			} else {
				w, err := c.word("counter name")
				if err != nil {
					return nil, err
				}
				name = w
			}
			return &stmt{kind: stmtCounter, counterRef: name}, nil
		}
		return &stmt{kind: stmtCounter}, nil
	case "masquerade":
		c.next()
		for !c.atEnd() && (c.is("fully-random") || c.is("random") || c.is("persistent") || c.is(",")) {
			c.next()
		}
		return &stmt{kind: stmtMasquerade}, nil
	case "dnat":
		return parseDNAT(c)
	case "update", "add":
		c.next()
		if err := c.expect("@"); err != nil {
			return nil, err
		}
		name, err := c.word("set name")
		if err != nil {
			return nil, err
		}
		if err := c.expect("{"); err != nil {
			return nil, err
		}
		e, ok, err := parseExpr(c)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, c.errorf("want a key expression in update @%s", name)
		}
		if err := c.expect("}"); err != nil {
			return nil, err
		}
		return &stmt{kind: stmtUpdate, expr: e, setRef: name}, nil
	}
	e, ok, err := parseExpr(c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, c.errorf("unknown statement %q", t.text)
	}
	if c.accept("set") {
		if len(e) != 1 || e[0].sel.typ != "mark" || e[0].op != "" {
			return nil, c.errorf("set on %s: only meta mark set is modelled", e[0].sel.name)
		}
		return parseMarkSet(c)
	}
	if c.accept("vmap") {
		s := &stmt{kind: stmtVmap, expr: e}
		return s, parseSetOperand(c, s, true)
	}
	s := &stmt{kind: stmtMatch, expr: e}
	switch {
	case c.accept("!="):
		s.negate = true
	case c.accept("=="):
	}
	return s, parseSetOperand(c, s, false)
}

// parseSetOperand reads what an expression is compared with or looked up
// in: @name, an anonymous {set} or {map}, or one constant.
func parseSetOperand(c *cursor, s *stmt, isMap bool) error {
	if c.accept("@") {
		name, err := c.word("set name")
		s.setRef = name
		return err
	}
	if c.is("{") {
		var err error
		s.elements, err = parseElements(c, s.expr.types(), mapKind(isMap))
		return err
	}
	if isMap {
		return c.errorf("vmap wants @map or {…}, got %s", c.peek())
	}
	key, err := parseKey(c, s.expr.types())
	if err != nil {
		return err
	}
	s.elements = []*Element{{Key: key}}
	return nil
}

// mapKind says what an element list's values are: none (a set), verdicts,
// or data of the given types.
type mapKindT struct {
	verdict bool
	data    []string
}

func mapKind(isVerdictMap bool) *mapKindT {
	if isVerdictMap {
		return &mapKindT{verdict: true}
	}
	return nil
}

// parseKey reads a concatenated constant "a . b . c" of the given types.
func parseKey(c *cursor, types []string) ([]Value, error) {
	var key []Value
	for i, typ := range types {
		if i > 0 {
			if err := c.expect("."); err != nil {
				return nil, err
			}
		}
		var word string
		var err error
		if typ == "ifname" && c.peek().kind == tokString {
			word = c.next().text
		} else if word, err = c.word(typ + " constant"); err != nil {
			return nil, err
		}
		v, err := parseValue(typ, word)
		if err != nil {
			return nil, c.errorf("%v", err)
		}
		key = append(key, v)
	}
	return key, nil
}

// parseElements reads "{ key [: value], … }", newlines allowed inside.
func parseElements(c *cursor, keyTypes []string, kind *mapKindT) ([]*Element, error) {
	if err := c.expect("{"); err != nil {
		return nil, err
	}
	var elements []*Element
	for {
		c.skipNewlines()
		if c.accept("}") {
			return elements, nil
		}
		start := c.pos
		e := &Element{}
		var err error
		if e.Key, err = parseKey(c, keyTypes); err != nil {
			return nil, err
		}
		for {
			switch {
			case c.accept("timeout"), c.accept("expires"):
				if _, err := c.word("duration"); err != nil {
					return nil, err
				}
				continue
			case c.accept("comment"):
				if e.Comment, err = c.str("element comment"); err != nil {
					return nil, err
				}
				continue
			}
			break
		}
		if kind != nil {
			if err := c.expect(":"); err != nil {
				return nil, err
			}
			if kind.verdict {
				v, err := parseVerdict(c)
				if err != nil {
					return nil, err
				}
				e.Verdict = &v
			} else if e.Data, err = parseKey(c, kind.data); err != nil {
				return nil, err
			}
		}
		e.Text = joinTokens(c.tokens[start:c.pos])
		elements = append(elements, e)
		c.skipNewlines()
		if !c.accept(",") {
			c.skipNewlines()
			if err := c.expect("}"); err != nil {
				return nil, err
			}
			return elements, nil
		}
	}
}

func parseVerdict(c *cursor) (Verdict, error) {
	word, err := c.word("verdict")
	if err != nil {
		return Verdict{}, err
	}
	switch word {
	case "accept":
		return Verdict{Kind: VerdictAccept}, nil
	case "drop":
		return Verdict{Kind: VerdictDrop}, nil
	case "return":
		return Verdict{Kind: VerdictReturn}, nil
	case "continue":
		return Verdict{Kind: VerdictContinue}, nil
	case "jump", "goto":
		chain, err := c.word("chain name")
		if err != nil {
			return Verdict{}, err
		}
		kind := VerdictJump
		if word == "goto" {
			kind = VerdictGoto
		}
		return Verdict{Kind: kind, Chain: chain}, nil
	}
	return Verdict{}, c.errorf("unknown verdict %q", word)
}

// parseMarkSet reads the value of "meta mark set VALUE": a constant, or
// the mark with a bitwise operation.
func parseMarkSet(c *cursor) (*stmt, error) {
	s := &stmt{kind: stmtMarkSet}
	e, ok, err := parseExpr(c)
	if err != nil {
		return nil, err
	}
	if ok {
		if len(e) != 1 || e[0].sel.typ != "mark" {
			return nil, c.errorf("mark set from %s: only the mark itself is modelled", e[0].sel.name)
		}
		s.expr = e
		return s, nil
	}
	word, err := c.word("mark value")
	if err != nil {
		return nil, err
	}
	if s.markConst, err = strconv.ParseUint(word, 0, 32); err != nil {
		return nil, c.errorf("bad mark %q", word)
	}
	return s, nil
}

// parseDNAT reads "dnat [ip|ip6] to ADDR[:PORT]" or
// "dnat ip|ip6 [addr . port] to EXPR map { … }".
func parseDNAT(c *cursor) (*stmt, error) {
	c.next()
	s := &stmt{kind: stmtDNAT}
	family := ""
	if c.is("ip") || c.is("ip6") {
		family = c.next().text
	}
	withPort := false
	if c.accept("addr") {
		for _, w := range []string{".", "port"} {
			if err := c.expect(w); err != nil {
				return nil, err
			}
		}
		withPort = true
	}
	if err := c.expect("to"); err != nil {
		return nil, err
	}
	e, ok, err := parseExpr(c)
	if err != nil {
		return nil, err
	}
	if !ok {
		word, err := c.word("dnat destination")
		if err != nil {
			return nil, err
		}
		ap, err := parseAddrPort(word)
		if err != nil {
			return nil, c.errorf("dnat to %q: %v", word, err)
		}
		s.dnatAddr, s.dnatPort = ap.Addr(), int(ap.Port())
		return s, nil
	}
	if family == "" {
		return nil, c.errorf("dnat to a map needs ip or ip6")
	}
	if err := c.expect("map"); err != nil {
		return nil, err
	}
	addrType := "ipv4_addr"
	if family == "ip6" {
		addrType = "ipv6_addr"
	}
	kind := &mapKindT{data: []string{addrType}}
	// nft lists "dnat ip addr . port to … map" as "dnat ip to … map"
	// with "address . port" data; a map of bare addresses has no ".".
	if withPort || mapHasPorts(c) {
		kind.data = append(kind.data, "inet_service")
	}
	s.expr, s.dnatMap = e, true
	if s.elements, err = parseElements(c, e.types(), kind); err != nil {
		return nil, err
	}
	return s, nil
}

// mapHasPorts looks ahead in an anonymous map "{ k : a . p, … }" for the
// "." of address . port data.
func mapHasPorts(c *cursor) bool {
	for i := 0; ; i++ {
		t := c.peekAt(i)
		if c.pos+i >= len(c.tokens) || t.text == "}" || t.text == "," {
			return false
		}
		if t.text == ":" {
			return c.peekAt(i+2).text == "."
		}
	}
}

// parseAddrPort reads "10.0.0.1", "10.0.0.1:80", "fd00::1" or
// "[fd00::1]:80".
func parseAddrPort(word string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(word); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(word, "[]"))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, 0), nil
}
