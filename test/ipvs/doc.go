// Package ipvs holds Switchyard's real-kernel tests of IPVS mode. They run inside a
// throwaway QEMU guest (test/vm) because CI hosts and dev boxes may have no IPVS.
//
// TestIPVSInVM (vm_test.go, run on the host as root) builds this package's guest tests
// with `go test -c -tags ipvsguest` (CGO_ENABLED=0), boots one guest per guest test and
// reports each result. The guest tests (guest_test.go) model a node with network
// namespaces: pods behind a bridge, each running a TCP/UDP echo server that answers with
// its name (or, asked "source", with the client address it sees), and an outside client; they drive pkg/ipvs's Proxier directly from
// snapshots against the real kernel (IPVS, netlink, ipset, iptables-nft, sysctls) and
// assert which pod answered and what the kernel holds.
//
// TestDaemonInVM (daemon_test.go) runs the real switchyard daemon in one guest instead:
// started as kubeadm starts kube-proxy (a kube-proxy link, --config written by the pinned
// kube-proxy with mode ipvs, --hostname-override), against the testbed's kube-apiserver,
// which the guest reaches through QEMU's user-mode network. Its guest half,
// TestGuestDaemon (daemon_guest_test.go), asserts the IPVS table, the traffic and
// /healthz as the host changes the Service and its EndpointSlice through the API.
package ipvs
