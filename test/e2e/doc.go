// Package e2e holds Switchyard's end-to-end tests: the real `switchyard run`
// binary, built from the working tree, programs iptables inside testbed node
// namespaces against a real kube-apiserver, and every test asserts what real
// traffic does (which pod answered, which source address it saw), with the
// reference kube-proxy v1.37.2 as a peer for differential checks.
//
// The tests need root and the pinned tools (`make tools`); otherwise they
// skip. Run them with `sudo make e2e` or, for just this package,
// `sudo hack/e2e.sh -run TestIPTables -v` (hack/e2e.sh sets
// SWITCHYARD_TOOLS_BIN).
package e2e
