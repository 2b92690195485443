// Package proxy is what every proxy mode has in common: the Provider interface the
// controller drives, the Result of one sync, and the full-sync state machine each
// Provider keeps.
//
// It sits between the model (pkg/endpoints) and the modes (pkg/iptables, pkg/ipvs,
// later nftables): the modes import it to implement Provider and to share SyncState,
// and pkg/controller imports it and the modes' constructors. It imports no mode, so a
// third mode adds a package that implements Provider and one constructor registered
// in pkg/controller's mode table, and nothing in the sync loop changes. (Provider
// cannot live in pkg/controller: the modes would then import the daemon.)
package proxy
