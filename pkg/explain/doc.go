// Package explain says, in plain words, what a node's proxy rules do with one
// packet: which Service and port it matches, each chain or virtual server it
// goes through, the endpoints it can reach and how likely each is, whether it
// is masqueraded and why, whether session affinity applies, and why it is
// dropped or rejected when it is.
//
// The types here are shared by every proxy mode: the iptables mode fills them
// from a packet trace through an iptables ruleset (ExplainIPTables), the IPVS
// mode from the virtual-server table and its companion rules, the nftables
// mode from a trace through the table by pkg/nftables/nftmodel (NFTables).
// Everything is a pure function of its inputs; reading the kernel is the
// caller's job.
package explain
