// Package nftmodel is a strict model of the nftables rulesets kube-proxy's
// nftables mode writes: it parses the text of `nft list table` (and the
// `add …` lines knftables sends to `nft -f` and prints from Fake.Dump), and
// traces a new connection's first packet through the base chains in hook and
// priority order, as the kernel would.
//
// Strict means that anything the model does not understand is an error, never
// skipped: an unknown statement, expression, set type or object, a jump to a
// chain that does not exist, a reference to a missing set, an element whose
// key does not fit its set's type. A model that silently ignored a statement
// would predict traffic the kernel does not produce.
//
// Trace reports every way a packet can end, like pkg/xtables/tracer does for
// iptables (it shares its Packet, Node, Origin and Verdict types): dropped or
// rejected (with the rule), or accepted, DNATed to an endpoint with the
// probability of `numgen random mod N` choosing it, and whether it is
// masqueraded. The fixtures under testdata/ are the real tables of the pinned
// kube-proxy v1.37.2 (see testdata/README.md), and test/nftables checks the
// model's predictions against real connections on the testbed.
//
// Simplifications: only the first (ct state new) packet is traced; routing is
// "local if the destination is a node address or loopback, else forwarded";
// dynamic sets (session affinity) are empty unless Options.AffinityHit names
// one, and `update` does not change them during a trace.
package nftmodel
