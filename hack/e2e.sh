#!/usr/bin/env bash
# Privileged end-to-end tests on the real testbed (test/testbed): a
# kube-apiserver and etcd, nodes and pods in network namespaces, and the
# reference kube-proxy. Needs root; the tests skip themselves otherwise.
# Extra arguments go to `go test` (e.g. -run TestCluster -v).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

if [ "$(id -u)" -ne 0 ]; then
	echo "e2e: not root: the privileged tests will skip (run: sudo make e2e)" >&2
fi

# build-tools.sh prints the bin directory as its last line; it is a no-op
# when the binaries for this test/tools/go.sum are cached.
SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -n 1)"
export SWITCHYARD_TOOLS_BIN
echo "e2e: tools in ${SWITCHYARD_TOOLS_BIN}" >&2

exec go test -race -count=1 -timeout 30m "$@" ./test/...
