// Package nftables is Switchyard's nftables proxy mode: kube-proxy v1.37's nftables
// layout (table kube-proxy in the ip and ip6 families, its base chains, verdict maps,
// sets and per-service chains, with the same names, comments and rule text), rendered
// as a pure function of an endpoints.Snapshot into a knftables.Transaction and applied
// through a small interface over knftables.Interface.
//
// A full render rewrites every chain and compares every map and set element with what
// the kernel lists; a partial render touches only the chains and elements of the
// service ports that changed, using an in-memory mirror of the elements applied. Chains
// no longer needed are flushed at once and deleted at least a second later, as
// kube-proxy does, because kernels before 6.2 notice late that a chain a deleted map
// element pointed to is unreferenced. See docs/nftables.md.
package nftables
