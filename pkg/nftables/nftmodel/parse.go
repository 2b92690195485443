package nftmodel

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Parse reads a ruleset from the text of `nft list table` / `nft list
// ruleset` (block form), or from `add …` commands as knftables writes them
// for `nft -f` and prints from Fake.Dump (line form), or a mix. Anything it
// does not model is an error naming the line. References are checked at the
// end: every jump and goto must name a chain of the table, every @set a set
// of a type the expression fits.
func Parse(text string) (*Ruleset, error) {
	tokens, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &parser{cursor: &cursor{tokens: tokens}, rs: &Ruleset{}}
	for {
		p.skipNewlines()
		if p.done() {
			break
		}
		if err := p.topLevel(); err != nil {
			return nil, err
		}
	}
	if err := p.rs.validate(); err != nil {
		return nil, err
	}
	return p.rs, nil
}

type parser struct {
	*cursor
	rs *Ruleset
}

func (p *parser) topLevel() error {
	word, err := p.word("table or add")
	if err != nil {
		return err
	}
	switch word {
	case "table":
		t, err := p.tableName()
		if err != nil {
			return err
		}
		return p.block(func() error { return p.tableItem(t) })
	case "add", "create":
		return p.command(word == "create")
	case "flush", "delete", "destroy":
		return p.removal(word)
	}
	return p.errorf("unknown command %q", word)
}

// tableName reads "FAMILY NAME" and returns the table, created if new.
func (p *parser) tableName() (*Table, error) {
	family, err := p.word("family")
	if err != nil {
		return nil, err
	}
	switch family {
	case "ip", "ip6", "inet":
	default:
		return nil, p.errorf("family %q: the model knows ip, ip6 and inet", family)
	}
	name, err := p.word("table name")
	if err != nil {
		return nil, err
	}
	return p.rs.ensureTable(family, name), nil
}

// block reads "{ item; item\n item }", calling item for each.
func (p *parser) block(item func() error) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	for {
		p.skipSeparators()
		if p.accept("}") {
			return nil
		}
		if p.done() {
			return p.errorf("unterminated block")
		}
		if err := item(); err != nil {
			return err
		}
		if !p.atEnd() {
			return p.errorf("unexpected %s", p.peek())
		}
	}
}

func (p *parser) skipSeparators() {
	for !p.done() && (p.peek().kind == tokNewline || p.is(";")) {
		p.next()
	}
}

func (p *parser) tableItem(t *Table) error {
	word, err := p.word("table item")
	if err != nil {
		return err
	}
	switch word {
	case "comment":
		t.Comment, err = p.str("table comment")
		return err
	case "flags":
		t.Flags, err = p.wordList()
		return err
	case "chain":
		name, err := p.word("chain name")
		if err != nil {
			return err
		}
		chain, err := p.newChain(t, name)
		if err != nil {
			return err
		}
		return p.block(func() error { return p.chainItem(chain, true) })
	case "set", "map":
		name, err := p.word(word + " name")
		if err != nil {
			return err
		}
		set, err := p.newSet(t, name, word == "map")
		if err != nil {
			return err
		}
		if err := p.block(func() error { return p.setItem(set) }); err != nil {
			return err
		}
		return checkSetType(set, p.cursor)
	case "counter":
		name, err := p.word("counter name")
		if err != nil {
			return err
		}
		if t.Counters[name] {
			return p.errorf("counter %s declared twice", name)
		}
		t.Counters[name] = true
		return p.skipBlock()
	}
	return p.errorf("unknown table item %q", word)
}

func (p *parser) newChain(t *Table, name string) (*Chain, error) {
	if _, ok := t.Chains[name]; ok {
		return nil, p.errorf("chain %s declared twice", name)
	}
	return t.ensureChain(name), nil
}

func (p *parser) newSet(t *Table, name string, isMap bool) (*Set, error) {
	if _, ok := t.Sets[name]; ok {
		return nil, p.errorf("set %s declared twice", name)
	}
	set := &Set{Name: name, Map: isMap}
	t.Sets[name] = set
	t.SetOrder = append(t.SetOrder, name)
	return set, nil
}

// chainItem reads a chain's "type … hook … priority …", "policy …",
// "comment …", or (when rules is set) a rule.
func (p *parser) chainItem(chain *Chain, rules bool) error {
	switch {
	case p.accept("type"):
		return p.baseChain(chain)
	case p.accept("policy"):
		if chain.Base == nil {
			return p.errorf("policy on regular chain %s", chain.Name)
		}
		policy, err := p.word("policy")
		if err != nil {
			return err
		}
		if policy != "accept" && policy != "drop" {
			return p.errorf("policy %q", policy)
		}
		chain.Base.Policy = policy
		return nil
	case p.is("comment") && p.peekAt(1).kind == tokString && isItemEnd(p.peekAt(2)):
		p.next()
		chain.Comment = p.next().text
		return nil
	}
	if !rules {
		return p.errorf("unexpected %s in a chain declaration", p.peek())
	}
	r, err := parseRule(p.cursor)
	if err != nil {
		return fmt.Errorf("chain %s: %w", chain.Name, err)
	}
	chain.Rules = append(chain.Rules, r)
	return nil
}

func isItemEnd(t token) bool {
	return t.kind == tokNewline || (t.kind == tokPunct && (t.text == ";" || t.text == "}"))
}

// hooks lists the hooks of the ip, ip6 and inet families.
var hooks = map[string]bool{"prerouting": true, "input": true, "forward": true, "output": true, "postrouting": true}

// namedPriorities are nft's standard priority names (ip, ip6, inet).
var namedPriorities = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

func (p *parser) baseChain(chain *Chain) error {
	if chain.Base != nil {
		return p.errorf("chain %s: type given twice", chain.Name)
	}
	typ, err := p.word("chain type")
	if err != nil {
		return err
	}
	if typ != "filter" && typ != "nat" {
		return p.errorf("chain %s: type %q is not modelled", chain.Name, typ)
	}
	if err := p.expect("hook"); err != nil {
		return err
	}
	hook, err := p.word("hook")
	if err != nil {
		return err
	}
	if !hooks[hook] {
		return p.errorf("chain %s: unknown hook %q", chain.Name, hook)
	}
	if err := p.expect("priority"); err != nil {
		return err
	}
	var words []string
	for !p.atEnd() {
		w, err := p.word("priority")
		if err != nil {
			return err
		}
		words = append(words, w)
	}
	priority, err := parsePriority(words)
	if err != nil {
		return p.errorf("chain %s: %v", chain.Name, err)
	}
	chain.Base = &BaseChain{Type: typ, Hook: hook, Priority: priority, PriorityText: strings.Join(words, " "), Policy: "accept"}
	return nil
}

// parsePriority reads "-110", "filter", "dstnat - 10" or "dstnat -10".
func parsePriority(words []string) (int, error) {
	text := strings.Join(words, "")
	if n, err := strconv.Atoi(text); err == nil {
		return n, nil
	}
	for name, base := range namedPriorities {
		rest, ok := strings.CutPrefix(text, name)
		if !ok {
			continue
		}
		if rest == "" {
			return base, nil
		}
		if n, err := strconv.Atoi(rest); err == nil && (rest[0] == '+' || rest[0] == '-') {
			return base + n, nil
		}
	}
	return 0, fmt.Errorf("priority %q", strings.Join(words, " "))
}

// setItem reads one property of a set or map declaration.
func (p *parser) setItem(set *Set) error {
	word, err := p.word("set property")
	if err != nil {
		return err
	}
	switch word {
	case "type":
		if set.KeyTypes != nil {
			return p.errorf("set %s: type given twice", set.Name)
		}
		for {
			typ, err := p.word("data type")
			if err != nil {
				return err
			}
			set.KeyTypes = append(set.KeyTypes, typ)
			if !p.accept(".") {
				break
			}
		}
		if p.accept(":") {
			var data []string
			for {
				typ, err := p.word("data type")
				if err != nil {
					return err
				}
				data = append(data, typ)
				if !p.accept(".") {
					break
				}
			}
			set.DataType = strings.Join(data, " . ")
		}
		return nil
	case "flags":
		set.Flags, err = p.wordList()
		for _, flag := range set.Flags {
			switch flag {
			case "dynamic", "timeout", "interval", "constant":
			default:
				return p.errorf("set %s: flag %q is not modelled", set.Name, flag)
			}
		}
		return err
	case "timeout":
		set.Timeout, err = p.word("timeout")
		return err
	case "size":
		set.Size, err = p.word("size")
		return err
	case "comment":
		set.Comment, err = p.str("comment")
		return err
	case "elements":
		if err := p.expect("="); err != nil {
			return err
		}
		if err := checkSetType(set, p.cursor); err != nil {
			return err
		}
		elements, err := parseElements(p.cursor, set.KeyTypes, set.valueKind())
		set.Elements = append(set.Elements, elements...)
		return err
	}
	return p.errorf("set %s: unknown property %q", set.Name, word)
}

// valueKind says what the values of the set's elements are.
func (s *Set) valueKind() *mapKindT {
	switch {
	case !s.Map:
		return nil
	case s.DataType == "verdict":
		return &mapKindT{verdict: true}
	}
	return &mapKindT{data: strings.Split(s.DataType, " . ")}
}

func checkSetType(set *Set, c *cursor) error {
	if len(set.KeyTypes) == 0 {
		return c.errorf("set %s has no type", set.Name)
	}
	types := set.KeyTypes
	if set.Map {
		if set.DataType == "" {
			return c.errorf("map %s has no value type", set.Name)
		}
		if set.DataType != "verdict" {
			types = append(append([]string(nil), types...), strings.Split(set.DataType, " . ")...)
		}
	} else if set.DataType != "" {
		return c.errorf("set %s has a value type", set.Name)
	}
	for _, typ := range types {
		if !knownTypes[typ] {
			return c.errorf("set %s: data type %q is not modelled", set.Name, typ)
		}
	}
	return nil
}

// wordList reads "a,b,c".
func (p *parser) wordList() ([]string, error) {
	var words []string
	for {
		w, err := p.word("flag")
		if err != nil {
			return nil, err
		}
		words = append(words, w)
		if !p.accept(",") {
			return words, nil
		}
	}
}

// command reads the rest of an "add …" or "create …" line; create fails
// when the object exists, as in nft.
func (p *parser) command(create bool) error {
	object, err := p.word("object")
	if err != nil {
		return err
	}
	if create {
		if err := p.checkAbsent(object); err != nil {
			return err
		}
	}
	t, err := p.tableName()
	if err != nil {
		return err
	}
	switch object {
	case "table":
		if p.is("{") {
			return p.block(func() error { return p.tableProperty(t) })
		}
		return nil
	case "chain":
		name, err := p.word("chain name")
		if err != nil {
			return err
		}
		chain := t.ensureChain(name)
		if p.is("{") {
			return p.block(func() error { return p.chainItem(chain, false) })
		}
		return nil
	case "set", "map":
		name, err := p.word(object + " name")
		if err != nil {
			return err
		}
		set, ok := t.Sets[name]
		if !ok {
			if set, err = p.newSet(t, name, object == "map"); err != nil {
				return err
			}
			if err := p.block(func() error { return p.setItem(set) }); err != nil {
				return err
			}
			return checkSetType(set, p.cursor)
		}
		// Re-adding an existing set is a no-op in nft.
		return p.block(func() error {
			for !p.atEnd() {
				p.next()
			}
			return nil
		})
	case "counter":
		name, err := p.word("counter name")
		if err != nil {
			return err
		}
		t.Counters[name] = true
		if p.is("{") {
			return p.skipBlock()
		}
		return nil
	case "rule":
		name, err := p.word("chain name")
		if err != nil {
			return err
		}
		chain, ok := t.Chains[name]
		if !ok {
			return p.errorf("add rule to missing chain %s", name)
		}
		r, err := parseRule(p.cursor)
		if err != nil {
			return fmt.Errorf("chain %s: %w", name, err)
		}
		chain.Rules = append(chain.Rules, r)
		return nil
	case "element":
		name, err := p.word("set name")
		if err != nil {
			return err
		}
		set, ok := t.Sets[name]
		if !ok {
			return p.errorf("add element to missing set %s", name)
		}
		elements, err := parseElements(p.cursor, set.KeyTypes, set.valueKind())
		set.Elements = append(set.Elements, elements...)
		return err
	}
	return p.errorf("add %s is not modelled", object)
}

func (p *parser) tableProperty(t *Table) error {
	var err error
	switch {
	case p.accept("comment"):
		t.Comment, err = p.str("table comment")
	case p.accept("flags"):
		t.Flags, err = p.wordList()
	default:
		err = p.errorf("unknown table property %s", p.peek())
	}
	return err
}

// checkAbsent looks ahead at "FAMILY TABLE [NAME]" and fails when the
// object exists.
func (p *parser) checkAbsent(object string) error {
	family, table, name := p.peekAt(0).text, p.peekAt(1).text, p.peekAt(2).text
	t := p.rs.Table(family, table)
	exists := false
	switch {
	case t == nil:
	case object == "table":
		exists = true
	case object == "chain":
		_, exists = t.Chains[name]
	case object == "set" || object == "map":
		_, exists = t.Sets[name]
	}
	if exists {
		return p.errorf("create %s: it exists", object)
	}
	return nil
}

// removal reads a "flush", "delete" or "destroy" command and applies it:
// flush empties a table's chains and sets, a chain's rules or a set's
// elements; delete removes the object and fails when it is missing;
// destroy is delete without that failure.
func (p *parser) removal(verb string) error {
	object, err := p.word("object")
	if err != nil {
		return err
	}
	if object == "ruleset" && verb == "flush" {
		p.rs.Tables = nil
		return nil
	}
	family, err := p.word("family")
	if err != nil {
		return err
	}
	tableName, err := p.word("table name")
	if err != nil {
		return err
	}
	t := p.rs.Table(family, tableName)
	missing := func(what string) error {
		if verb == "destroy" {
			return nil
		}
		return p.errorf("%s %s: no such %s", verb, object, what)
	}
	if object == "table" {
		switch {
		case t == nil:
			return missing("table")
		case verb == "flush":
			for _, c := range t.Chains {
				c.Rules = nil
			}
			for _, s := range t.Sets {
				s.Elements = nil
			}
		default:
			p.rs.Tables = slices.DeleteFunc(p.rs.Tables, func(x *Table) bool { return x == t })
		}
		return nil
	}
	name, err := p.word(object + " name")
	if err != nil {
		return err
	}
	if t == nil {
		if object == "element" {
			_, _ = parseElements(p.cursor, nil, nil)
		}
		return missing("table")
	}
	switch object {
	case "chain":
		c, ok := t.Chains[name]
		switch {
		case !ok:
			return missing("chain " + name)
		case verb == "flush":
			c.Rules = nil
		default:
			delete(t.Chains, name)
			t.ChainOrder = slices.DeleteFunc(t.ChainOrder, func(n string) bool { return n == name })
		}
		return nil
	case "counter":
		switch {
		case !t.Counters[name]:
			return missing("counter " + name)
		case verb == "delete" || verb == "destroy":
			delete(t.Counters, name)
		}
		return nil
	case "set", "map":
		s, ok := t.Sets[name]
		switch {
		case !ok || s.Map != (object == "map"):
			return missing(object + " " + name)
		case verb == "flush":
			s.Elements = nil
		default:
			delete(t.Sets, name)
			t.SetOrder = slices.DeleteFunc(t.SetOrder, func(n string) bool { return n == name })
		}
		return nil
	case "element":
		if verb == "flush" {
			return p.errorf("flush element is not a command")
		}
		s, ok := t.Sets[name]
		if !ok {
			return missing("set " + name)
		}
		keys, err := parseElements(p.cursor, s.KeyTypes, nil)
		if err != nil {
			return err
		}
		for _, k := range keys {
			before := len(s.Elements)
			s.Elements = slices.DeleteFunc(s.Elements, func(e *Element) bool { return keyText(e.Key) == keyText(k.Key) })
			if len(s.Elements) == before {
				if err := missing("element " + keyText(k.Key) + " in " + name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return p.errorf("%s %s is not modelled", verb, object)
}

// skipBlock reads a "{ … }" whose contents the model does not keep (a named
// counter's packets and bytes).
func (p *parser) skipBlock() error {
	return p.block(func() error {
		for !p.atEnd() {
			p.next()
		}
		return nil
	})
}

// keyText is a key as nft prints it.
func keyText(key []Value) string {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = v.String()
	}
	return strings.Join(parts, " . ")
}
