#!/usr/bin/env bash
# Time and memory of the stale UDP conntrack cleanup for a one-endpoint change, with
# a large table in a network namespace the test creates and deletes (root). Prints,
# for each size, the bounded cleanup (dumps filtered by the kernel per frontend), the
# start-up path (one dump filtered on UDP) and the implementation before it (the
# whole table through netlink.ConntrackDeleteFilters). docs/reliability.md has the
# figures. ENTRIES lists the sizes; nf_conntrack_max (the host's, read-only in a
# namespace) must be at least the largest: 1000000 needs a host where it is raised.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench-conntrack: needs root (network namespace, conntrack table)" >&2
	exit 1
fi
go test -c -o /tmp/switchyard-conntrack.test ./test/conntrack/
cd test/conntrack
for n in ${ENTRIES:-20000 100000 250000}; do
	SWITCHYARD_CONNTRACK_ENTRIES="$n" SWITCHYARD_CONNTRACK_BASELINE=1 \
		/tmp/switchyard-conntrack.test -test.run 'TestCleanupDeletesExactlyTheStaleEntries' -test.v -test.count=1 -test.timeout 30m |
		grep -E 'entries, |^(--- |ok|FAIL|PASS)'
done

# VM_ENTRIES=1000000 also runs that size in the throwaway QEMU guest of test/vm
# (hack/vm-deps.sh), whose kernel the test may configure: it raises the guest's
# nf_conntrack_max and hash size. Software emulation: about 16 minutes at 1M, and
# times comparable only with each other inside the guest.
if [ -n "${VM_ENTRIES:-}" ]; then
	root="$(git rev-parse --show-toplevel)"
	(cd "${root}" && CGO_ENABLED=0 go test -c -o /tmp/switchyard-conntrack-static.test ./test/conntrack/ &&
		go build -o /tmp/switchyard-vmexec ./test/vm/cmd/vmexec)
	SWITCHYARD_VM_MEMORY=4096 SWITCHYARD_VM_TIMEOUT=40m /tmp/switchyard-vmexec /tmp/switchyard-conntrack-static.test \
		-test.run 'TestCleanupDeletesExactlyTheStaleEntries' -test.v -test.timeout 40m \
		-conntrack.entries "${VM_ENTRIES}" -conntrack.baseline |
		grep -E 'entries|^(--- |ok|FAIL|PASS)'
fi

# VM_LATENCY_ENTRIES (default VM_ENTRIES) also times, in one guest run, a one-endpoint
# change of a UDP Service end to end (API write to real server gone, and to its stale
# entries deleted) with a small table and with that many entries in the node's
# namespace: the daemon in IPVS mode in the guest against the testbed's kube-apiserver
# (test/ipvs TestConntrackLatencyInVM; about 12 minutes at 1M).
latency="${VM_LATENCY_ENTRIES:-${VM_ENTRIES:-}}"
if [ -n "${latency}" ]; then
	root="$(git rev-parse --show-toplevel)"
	(cd "${root}" && SWITCHYARD_TOOLS_BIN="${SWITCHYARD_TOOLS_BIN:-$(hack/build-tools.sh | tail -1)}" \
		SWITCHYARD_CONNTRACK_VM_LATENCY_ENTRIES="${latency}" \
		go test -count=1 -timeout 60m -run '^TestConntrackLatencyInVM$' -v ./test/ipvs/) |
		grep -E 'FIGURE|entries|^(--- |ok|FAIL|PASS)'
fi
