package xtables

// Table is the name of an iptables table.
type Table string

// The tables Switchyard touches.
const (
	// TableFilter holds the accept/drop/reject rules.
	TableFilter Table = "filter"
	// TableNAT holds the DNAT and masquerade rules.
	TableNAT Table = "nat"
	// TableMangle holds only the canary chain.
	TableMangle Table = "mangle"
)

// Chain is the name of a chain in some table.
type Chain string

// Built-in chains the hooks jump from.
const (
	ChainPrerouting  Chain = "PREROUTING"
	ChainInput       Chain = "INPUT"
	ChainForward     Chain = "FORWARD"
	ChainOutput      Chain = "OUTPUT"
	ChainPostrouting Chain = "POSTROUTING"
)

// Chains kube-proxy writes in both its iptables and its IPVS mode, with its names.
const (
	// ChainKubePostrouting (nat) masquerades packets carrying the masquerade mark.
	ChainKubePostrouting Chain = "KUBE-POSTROUTING"
	// ChainKubeMarkMasq (nat) sets the masquerade mark.
	ChainKubeMarkMasq Chain = "KUBE-MARK-MASQ"
	// ChainKubeForward (filter) accepts forwarded service traffic.
	ChainKubeForward Chain = "KUBE-FORWARD"
	// ChainCanary is created empty in the mangle, nat and filter tables; when it
	// disappears, someone flushed the tables (a firewall reload, a careless script)
	// and every rule must be rewritten.
	ChainCanary Chain = "KUBE-PROXY-CANARY"
)

// CanaryTables are the tables that hold ChainCanary, in the order kube-proxy
// creates and checks them.
func CanaryTables() []Table { return []Table{TableMangle, TableNAT, TableFilter} }
