// Package ruleset is an in-memory model of the iptables tables of one address
// family, built by parsing iptables-restore payloads.
//
// It exists so that Switchyard's rendered rules can be checked without a
// kernel: Apply honours iptables-restore's --noflush semantics (the ones
// kube-proxy relies on for partial syncs), rejects what the kernel would
// reject (jumps to missing chains, deleting a referenced chain, DNAT outside
// the nat table, loops), and is atomic per call like iptables-nft-restore,
// which sends the whole payload as one netlink batch. Save prints canonical
// iptables-save-like text so two rulesets compare as strings.
//
// Only the matches and targets kube-proxy's iptables mode emits are
// understood; anything else is a parse error naming the unknown option, so a
// typo in a renderer fails loudly instead of being silently accepted.
//
// Not modelled: counters (accepted and ignored), -R, -P, -Z, ipset matches,
// targets other than ACCEPT/DROP/RETURN/REJECT/DNAT/MASQUERADE/MARK, and
// iptables-save's reordering of matches (rules print in the order written).
package ruleset
