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
