//go:build linux

package ipvs

// The plan TestConntrackLatencyInVM (host, ctlatency_test.go) and
// TestGuestConntrackLatency (guest, ctlatency_guest_test.go) share: issue 11 item 2,
// the end-to-end latency of a one-endpoint change of a UDP Service with and without a
// large conntrack table in the node's namespace.

const (
	// ctEntriesEnv is the host's setting: how many conntrack entries the guest
	// inserts (1,000,000 for issue 11); unset, the test is skipped (it is a benchmark,
	// `make bench-conntrack` with VM_ENTRIES, not CI).
	ctEntriesEnv = "SWITCHYARD_CONNTRACK_VM_LATENCY_ENTRIES"
	// dnsService is Service default/dns, UDP 53 to the pods' 8080 at dnsClusterIP.
	dnsService   = "dns"
	dnsClusterIP = "10.96.100.53"
	dnsPort      = 53
	dnsSlice     = "dns-vm"

	// The steps the guest announces, each answered by one API change of dns's
	// EndpointSlice.
	stepDNSB  = "dns-endpoints-b"  // dns: pod-b only (pod-a removed: the measured change)
	stepDNSAB = "dns-endpoints-ab" // dns: pod-a and pod-b again
)

// ctLatencySteps are the steps in the order the guest announces them: the measured
// change and back, twice on a small table and twice with the large one.
var ctLatencySteps = []string{stepDNSB, stepDNSAB, stepDNSB, stepDNSAB, stepDNSB, stepDNSAB, stepDNSB}
