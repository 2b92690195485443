// Package rulediff computes what a full sync would change in a node's iptables: the
// basis of `switchyard dry-run --diff`.
//
// It is pure: the caller reads the kernel (iptables-save) and renders the full sync's
// payload; Compare applies to a copy of the kernel's rules what a full sync does
// (ensure the hook jumps and the canary chains, then restore the payload with
// --noflush) and diffs the part the proxy owns, before and after, as unified diffs.
// Rules are compared in the form iptables-save prints them (CanonicalRule), since the
// kernel does not keep the text it was given. Other programs' chains and rules are
// left out, except their jumps into the proxy's chains.
package rulediff
