package nftables

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// compiler turns the `nft -f` text of a partial transaction into the nf_tables netlink
// messages nft sends for the same text, for the forms partial syncs write most: a
// service's chains (created, flushed, deleted), their DNAT, goto and masquerade rules,
// and the elements of the shared sets and maps. Anything else is left to nft: the
// compiler reports it cannot, and the whole transaction goes through the nft binary.
//
// Why: nft 1.0.6 lists every chain and set of the family before it applies anything,
// so at 10k services × 10 endpoints even a one-element transaction costs 50–70 ms of
// kernel time in those dumps (strace of `nft -f`: GETTABLE, GETCHAIN, GETSET, GETOBJ
// dumps before the batch). The Proxier knows the table already; a batch sent directly
// costs one round trip.
//
// The messages are those nft 1.0.6 sends, attribute for attribute where it matters to
// what nft lists back (an anonymous map's flags, types and user data); test/nftkernel
// compares `nft list` and the kernel's expressions of both writers.
type compiler struct {
	family  byte // NFPROTO_IPV4 or NFPROTO_IPV6
	ipX     string
	addr    string // "ipv4_addr" or "ipv6_addr"
	keys    map[string][]string
	msgs    []netlink.Message
	nextSet uint32
}

// tableAttr is the table's name as a netlink string attribute.
const tableAttr = TableName + "\x00"

// compileTransaction compiles text (knftables' Transaction.String) for family into
// netlink messages, without the batch's begin and end; ok is false when a line is
// outside the forms the compiler knows.
func compileTransaction(text string, family v1.IPFamily) (msgs []netlink.Message, ok bool) {
	c := &compiler{family: unix.NFPROTO_IPV4, ipX: "ip", addr: "ipv4_addr"}
	if family == v1.IPv6Protocol {
		c.family, c.ipX, c.addr = unix.NFPROTO_IPV6, "ip6", "ipv6_addr"
	}
	c.keys = containerKeys(c.addr)
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		if !c.line(line) {
			return nil, false
		}
	}
	return c.msgs, len(c.msgs) > 0
}

// line compiles one operation.
func (c *compiler) line(line string) bool {
	// VERB OBJECT FAMILY TABLE REST
	f := strings.SplitN(line, " ", 5)
	if len(f) < 5 || f[2] != c.ipX || f[3] != TableName {
		return false
	}
	verb, object, rest := f[0], f[1], f[4]
	switch {
	case object == "chain" && isName(rest):
		switch verb {
		case "add":
			c.add(unix.NFT_MSG_NEWCHAIN, netlink.Create, chainAttrs(rest))
		case "flush":
			c.add(unix.NFT_MSG_DELRULE, 0, []netlink.Attribute{
				{Type: unix.NFTA_RULE_TABLE, Data: []byte(tableAttr)},
				{Type: unix.NFTA_RULE_CHAIN, Data: []byte(rest + "\x00")},
			})
		case "delete":
			c.add(unix.NFT_MSG_DELCHAIN, 0, chainAttrs(rest))
		default:
			return false
		}
		return true
	case object == "rule" && verb == "add":
		chain, rule, ok := strings.Cut(rest, " ")
		if !ok || !isName(chain) {
			return false
		}
		return c.rule(chain, rule)
	case object == "element" && (verb == "add" || verb == "delete"):
		return c.element(verb, rest)
	}
	return false
}

// isName reports whether s is one chain or set name (no spaces, no braces).
func isName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " {};\"")
}

func chainAttrs(name string) []netlink.Attribute {
	return []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(tableAttr)},
		{Type: unix.NFTA_CHAIN_NAME, Data: []byte(name + "\x00")},
	}
}

// add appends a message of the nf_tables subsystem (the writer asks for the ack).
func (c *compiler) add(msgType int, flags netlink.HeaderFlags, attrs []netlink.Attribute) bool {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return false
	}
	c.msgs = append(c.msgs, netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType),
			Flags: netlink.Request | flags,
		},
		Data: append([]byte{c.family, unix.NFNETLINK_V0, 0, 0}, data...),
	})
	return true
}

// rule compiles `add rule` of one of the rule forms of a service's chains.
func (c *compiler) rule(chain, text string) bool {
	text, comment, ok := cutComment(text)
	if !ok {
		return false
	}
	exprs, ok := c.expressions(strings.Fields(text))
	if !ok {
		return false
	}
	list := make([]netlink.Attribute, 0, len(exprs))
	for _, e := range exprs {
		b, err := expr.Marshal(c.family, e)
		if err != nil {
			return false
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
	}
	listData, err := netlink.MarshalAttributes(list)
	if err != nil {
		return false
	}
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(tableAttr)},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: listData},
	}
	var udata []byte
	if comment != nil {
		udata = commentTLV(*comment)
	}
	udata = append(udata, tagTLV(RuleTag(chain, text, comment))...)
	attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_RULE_USERDATA, Data: udata})
	return c.add(unix.NFT_MSG_NEWRULE, netlink.Create|netlink.Append, attrs)
}

// ruleTagType is the type of the user data entry that tags a rule the compiler wrote
// with RuleTag. nft reads only the entries it knows (NFTNL_UDATA_RULE_COMMENT 0 and
// NFTNL_UDATA_RULE_EBTABLES_POLICY 1) and skips the others, so the tag changes nothing
// nft lists; `nft --debug=netlink` shows it in the rule's raw user data.
const ruleTagType = 0x53

// RuleTag identifies a rule's text: FNV-64a of its chain, its statements and its
// comment. A rule whose tag (KernelRule.Tag) equals the tag of a rendered rule was
// written from that very text, and since the kernel cannot change a rule in place
// without replacing its user data, a chain whose rules carry the tags of its render
// holds that render.
func RuleTag(chain, text string, comment *string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(chain))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(text))
	if comment != nil {
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(*comment))
	}
	return h.Sum64()
}

// tagTLV is the user data entry of a rule's tag.
func tagTLV(tag uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{ruleTagType, 8}, tag)
}

// ruleTagOf returns the tag in a rule's user data (0: none).
func ruleTagOf(udata []byte) uint64 {
	for len(udata) >= 2 {
		t, n := udata[0], int(udata[1])
		if len(udata) < 2+n {
			return 0
		}
		if t == ruleTagType && n == 8 {
			return binary.BigEndian.Uint64(udata[2:10])
		}
		udata = udata[2+n:]
	}
	return 0
}

// cutComment splits a trailing ` comment "…"` (knftables writes it with %q) off a
// rule or element.
func cutComment(text string) (string, *string, bool) {
	i := strings.LastIndex(text, ` comment "`)
	if i < 0 {
		return text, nil, true
	}
	s, err := strconv.Unquote(text[i+len(" comment "):])
	if err != nil {
		return "", nil, false
	}
	return text[:i], &s, true
}

// commentTLV is the user data nft writes for a comment: type 0 (NFTNL_UDATA_*_COMMENT,
// for rules and elements alike), its length, the text and a NUL.
func commentTLV(s string) []byte {
	return append([]byte{0, byte(len(s) + 1)}, append([]byte(s), 0)...)
}

// expressions compiles a rule's statements, whole or not at all.
func (c *compiler) expressions(t []string) ([]expr.Any, bool) {
	var out []expr.Any
	for len(t) > 0 {
		switch {
		case len(t) >= 3 && t[0] == "meta" && t[1] == "l4proto":
			proto, ok := protoNumber(t[2])
			if !ok {
				return nil, false
			}
			out = append(out,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}})
			t = t[3:]
		case len(t) >= 4 && t[0] == "fib" && t[1] == "saddr" && t[2] == "type" && t[3] == "local":
			out = append(out,
				&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
			t = t[4:]
		case len(t) >= 3 && t[0] == c.ipX && t[1] == "saddr": // a set, "!=" or "{" is no prefix
			e, ok := c.sourcePrefix(t[2])
			if !ok {
				return nil, false
			}
			out = append(out, e...)
			t = t[3:]
		case len(t) == 5 && t[0] == "mark" && t[1] == "set" && t[2] == "mark" && t[3] == "or":
			m, err := strconv.ParseUint(t[4], 0, 32)
			if err != nil {
				return nil, false
			}
			out = append(out,
				&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(^uint32(m)), Xor: binaryutil.NativeEndian.PutUint32(uint32(m))},
				&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
			t = t[5:]
		case len(t) == 2 && (t[0] == "goto" || t[0] == "jump") && isName(t[1]):
			kind := expr.VerdictGoto
			if t[0] == "jump" {
				kind = expr.VerdictJump
			}
			out = append(out, &expr.Verdict{Kind: kind, Chain: t[1]})
			t = t[2:]
		case len(t) == 3 && t[0] == "dnat" && t[1] == "to":
			e, ok := c.dnatTo(t[2])
			if !ok {
				return nil, false
			}
			out = append(out, e...)
			t = t[3:]
		case len(t) >= 10 && t[0] == "dnat" && t[1] == c.ipX && strings.Join(t[2:9], " ") == "addr . port to numgen random mod":
			e, ok := c.dnatNumgen(t[9:])
			if !ok {
				return nil, false
			}
			return append(out, e...), true
		default:
			return nil, false
		}
	}
	return out, len(out) > 0
}

// protoNumber is the inet_proto value of a protocol name or number.
func protoNumber(s string) (byte, bool) {
	for n, name := range protocolNames {
		if name == s {
			return n, true
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return byte(n), err == nil
}

// sourcePrefix compiles `ip saddr CIDR` (or an address) as nft does for a prefix on
// a byte boundary: the prefix's bytes of the source address, compared whole. Other
// prefixes are left to nft.
func (c *compiler) sourcePrefix(s string) ([]expr.Any, bool) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return nil, false
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4() != (c.family == unix.NFPROTO_IPV4) || p.Bits() == 0 || p.Bits()%8 != 0 || p.Masked() != p {
		return nil, false
	}
	offset := uint32(12) // the IPv4 source address
	if c.family == unix.NFPROTO_IPV6 {
		offset = 8
	}
	n := uint32(p.Bits() / 8)
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()[:n]},
	}, true
}

// dnatTo compiles `dnat to ADDR:PORT`: both in immediates, the port specified.
func (c *compiler) dnatTo(s string) ([]expr.Any, bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Is4() != (c.family == unix.NFPROTO_IPV4) {
		return nil, false
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: ap.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(ap.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(c.family), RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}, true
}

// Types and user data of the anonymous map `numgen random mod N map { i : ADDR . PORT }`
// as nft 1.0.6 declares it (captured with `nft --debug=mnl`).
const (
	nftTypeInteger     = 4
	nftTypeIPv4Addr    = 7
	nftTypeIPv6Addr    = 8
	nftTypeInetService = 13
	// concatBits is the shift of nft's concatenated type ids.
	concatBits = 6
	// anonymousMapFlags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP.
	anonymousMapFlags = unix.NFT_SET_ANONYMOUS | unix.NFT_SET_CONSTANT | unix.NFT_SET_MAP
)

// numgenMapUserData is the set's user data nft writes for that map: the key in host
// byte order (NFTNL_UDATA_SET_KEYBYTEORDER 1), the data's byte order left unset
// (NFTNL_UDATA_SET_DATABYTEORDER 0) and no interval data (NFTNL_UDATA_SET_DATA_INTERVAL 0).
var numgenMapUserData = []byte{0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0}

// dnatNumgen compiles the rest of `dnat ip addr . port to numgen random mod N map { … }`
// (t starts at N): the anonymous map, its elements, then numgen, lookup and dnat.
func (c *compiler) dnatNumgen(t []string) ([]expr.Any, bool) {
	n, err := strconv.Atoi(t[0])
	// N map { then "i : ADDR . PORT" for each i, with "," between, then }.
	if err != nil || n < 1 || len(t) != 6*n+3 || t[1] != "map" || t[2] != "{" || t[len(t)-1] != "}" {
		return nil, false
	}
	addrType, addrLen, protoReg := uint32(nftTypeIPv4Addr), 4, uint32(9) // NFT_REG32_01
	if c.family == unix.NFPROTO_IPV6 {
		addrType, addrLen, protoReg = nftTypeIPv6Addr, 16, 12 // NFT_REG32_04
	}
	var elems []netlink.Attribute
	entries := t[3 : len(t)-1]
	for i := range n {
		e := entries[i*6:]
		if e[0] != strconv.Itoa(i) || e[1] != ":" || e[3] != "." || (i < n-1 && e[5] != ",") {
			return nil, false
		}
		addr, err := netip.ParseAddr(e[2])
		port, perr := strconv.ParseUint(e[4], 10, 16)
		if err != nil || perr != nil || addr.BitLen() != addrLen*8 {
			return nil, false
		}
		value := append(addr.AsSlice(), byte(port>>8), byte(port), 0, 0)
		el, ok := marshalNested(
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: dataValue(binaryutil.NativeEndian.PutUint32(uint32(i)))},
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_DATA, Data: dataValue(value)},
		)
		if !ok {
			return nil, false
		}
		elems = append(elems, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: el})
	}
	c.nextSet++
	id := c.nextSet
	const name = "__map%d\x00"
	desc, ok := marshalNested(netlink.Attribute{Type: unix.NFTA_SET_DESC_SIZE, Data: binaryutil.BigEndian.PutUint32(uint32(n))})
	if !ok {
		return nil, false
	}
	c.add(unix.NFT_MSG_NEWSET, netlink.Create, []netlink.Attribute{
		{Type: unix.NFTA_SET_TABLE, Data: []byte(tableAttr)},
		{Type: unix.NFTA_SET_NAME, Data: []byte(name)},
		{Type: unix.NFTA_SET_FLAGS, Data: binaryutil.BigEndian.PutUint32(anonymousMapFlags)},
		{Type: unix.NFTA_SET_KEY_TYPE, Data: binaryutil.BigEndian.PutUint32(nftTypeInteger)},
		{Type: unix.NFTA_SET_KEY_LEN, Data: binaryutil.BigEndian.PutUint32(4)},
		{Type: unix.NFTA_SET_DATA_TYPE, Data: binaryutil.BigEndian.PutUint32(addrType<<concatBits | nftTypeInetService)},
		{Type: unix.NFTA_SET_DATA_LEN, Data: binaryutil.BigEndian.PutUint32(uint32(addrLen + 4))},
		{Type: unix.NFTA_SET_ID, Data: binaryutil.BigEndian.PutUint32(id)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_SET_DESC, Data: desc},
		{Type: unix.NFTA_SET_USERDATA, Data: numgenMapUserData},
	})
	list, ok := marshalNested(elems...)
	if !ok {
		return nil, false
	}
	c.add(unix.NFT_MSG_NEWSETELEM, netlink.Create, []netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(tableAttr)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(name)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET_ID, Data: binaryutil.BigEndian.PutUint32(id)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: list},
	})
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: uint32(n), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: strings.TrimSuffix(name, "\x00"), SetID: id},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(c.family), RegAddrMin: 1, RegProtoMin: protoReg},
	}, true
}

// element compiles `add element` and `delete element` of a shared set or map.
func (c *compiler) element(verb, rest string) bool {
	name, inner, ok := strings.Cut(rest, " { ")
	keyTypes, known := c.keys[name]
	if !ok || !known || !strings.HasSuffix(inner, " }") {
		return false
	}
	inner = strings.TrimSuffix(inner, " }")
	isMap := !isSetName(name)
	var value string
	if verb == "add" && isMap {
		var found bool
		if inner, value, found = cutLast(inner, " : "); !found {
			return false
		}
	}
	keyText, comment, ok := cutComment(inner)
	if !ok || (verb == "delete" && comment != nil) {
		return false
	}
	key, ok := encodeKey(keyTypes, strings.Split(keyText, " . "))
	if !ok {
		return false
	}
	attrs := []netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: dataValue(key)}}
	if value != "" {
		v, ok := verdictData(value)
		if !ok {
			return false
		}
		attrs = append(attrs, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_DATA, Data: v})
	}
	if comment != nil {
		attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_SET_ELEM_USERDATA, Data: commentTLV(*comment)})
	}
	el, ok := marshalNested(attrs...)
	if !ok {
		return false
	}
	list, ok := marshalNested(netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: el})
	if !ok {
		return false
	}
	msgType, flags := unix.NFT_MSG_NEWSETELEM, netlink.Create
	if verb == "delete" {
		msgType, flags = unix.NFT_MSG_DELSETELEM, 0
	}
	return c.add(msgType, flags, []netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(tableAttr)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(name + "\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: list},
	})
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// encodeKey is decodeKey's inverse: each component of a concatenation in a whole
// number of 4-byte registers, a lone component unpadded.
func encodeKey(components, parts []string) ([]byte, bool) {
	if len(parts) != len(components) {
		return nil, false
	}
	var out []byte
	for i, comp := range components {
		var v []byte
		switch comp {
		case "ipv4_addr", "ipv6_addr":
			a, err := netip.ParseAddr(parts[i])
			if err != nil || (comp == "ipv4_addr") != a.Is4() {
				return nil, false
			}
			v = a.AsSlice()
		case "inet_proto":
			p, ok := protoNumber(parts[i])
			if !ok {
				return nil, false
			}
			v = []byte{p}
		case "inet_service":
			p, err := strconv.ParseUint(parts[i], 10, 16)
			if err != nil {
				return nil, false
			}
			v = binary.BigEndian.AppendUint16(nil, uint16(p))
		default:
			return nil, false
		}
		out = append(out, v...)
		if len(components) > 1 {
			for len(out)%4 != 0 {
				out = append(out, 0)
			}
		}
	}
	return out, true
}

// verdictData is a map element's value: NFTA_DATA_VERDICT with its code and chain.
func verdictData(s string) ([]byte, bool) {
	word, chain, _ := strings.Cut(s, " ")
	var code int32
	switch {
	case word == "goto" && isName(chain):
		code = unix.NFT_GOTO
	case word == "jump" && isName(chain):
		code = unix.NFT_JUMP
	case word == "drop" && chain == "":
		code = 0 // NF_DROP
	case word == "accept" && chain == "":
		code = 1 // NF_ACCEPT
	default:
		return nil, false
	}
	attrs := []netlink.Attribute{{Type: nftaVerdictCode, Data: binaryutil.BigEndian.PutUint32(uint32(code))}}
	if chain != "" {
		attrs = append(attrs, netlink.Attribute{Type: nftaVerdictChain, Data: []byte(chain + "\x00")})
	}
	v, ok := marshalNested(attrs...)
	if !ok {
		return nil, false
	}
	return marshalNested(netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_DATA_VERDICT, Data: v})
}

// dataValue is NFTA_DATA_VALUE holding b, the body of a key or a map's data.
func dataValue(b []byte) []byte {
	v, _ := marshalNested(netlink.Attribute{Type: unix.NFTA_DATA_VALUE, Data: b})
	return v
}

func marshalNested(attrs ...netlink.Attribute) ([]byte, bool) {
	b, err := netlink.MarshalAttributes(attrs)
	return b, err == nil
}
