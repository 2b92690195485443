package ruleset

import "net/netip"

// Family is the address family a Ruleset holds, as iptables (IPv4) and
// ip6tables (IPv6) keep fully separate tables.
type Family int

const (
	// IPv4 is the family programmed by iptables-restore.
	IPv4 Family = iota
	// IPv6 is the family programmed by ip6tables-restore.
	IPv6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Contains reports whether addr belongs to the family.
func (f Family) Contains(addr netip.Addr) bool {
	if f == IPv6 {
		return addr.Is6() && !addr.Is4In6()
	}
	return addr.Is4()
}

// Table names understood by Apply.
const (
	TableFilter = "filter"
	TableNAT    = "nat"
	TableMangle = "mangle"
	TableRaw    = "raw"
)

// tableOrder is the fixed order in which Save prints tables.
var tableOrder = []string{TableFilter, TableNAT, TableMangle, TableRaw}

// builtinChains lists each table's built-in chains in the order the kernel
// registers their hooks, which is the order iptables-save prints them.
var builtinChains = map[string][]string{
	TableFilter: {"INPUT", "FORWARD", "OUTPUT"},
	TableNAT:    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	TableMangle: {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	TableRaw:    {"PREROUTING", "OUTPUT"},
}

// Tables returns the table names Apply understands, in Save order.
func Tables() []string {
	return append([]string(nil), tableOrder...)
}

// BuiltinChains returns the built-in chains of table in hook order, or nil for
// an unknown table.
func BuiltinChains(table string) []string {
	return append([]string(nil), builtinChains[table]...)
}

// IsBuiltinChain reports whether chain is one of table's built-in chains.
func IsBuiltinChain(table, chain string) bool {
	for _, name := range builtinChains[table] {
		if name == chain {
			return true
		}
	}
	return false
}

// maxChainNameLen is the longest chain name the kernel accepts:
// XT_EXTENSION_MAXNAMELEN (29) including the terminating NUL.
const maxChainNameLen = 28

// maxCommentLen is XT_MAX_COMMENT_LEN (256) minus the terminating NUL;
// iptables refuses longer comments.
const maxCommentLen = 255
