#!/usr/bin/env bash
# Runs Switchyard's IPVS-mode tests against a real kernel: the unit tests of pkg/ipvs and
# the dry-run golden tests, then test/ipvs, which boots one throwaway QEMU guest per
# scenario, and one more for the daemon against a real kube-apiserver (see
# test/ipvs/doc.go and docs/ipvs.md). Needs root for the VM tests; with CI
# set, a missing VM dependency fails instead of skipping.
#
#   sudo hack/ipvs-e2e.sh                      # everything
#   SWITCHYARD_IPVS_TESTS=Graceful sudo hack/ipvs-e2e.sh   # a subset of the guest tests
#   SWITCHYARD_VM_VERBOSE=1 ...                # stream the guests' consoles into the log
#
# Never changes the host's network configuration: every kernel change happens in the guest.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/vm-deps.sh
go test -race -count=1 ./pkg/ipvs/... ./pkg/xtables/ruleset/ ./cmd/proxy/
# The guest binary is built by the test itself (CGO_ENABLED=0, -tags ipvsguest).
go test -count=1 -v -timeout 10m -run TestIPVSInVM ./test/ipvs/
# The daemon in IPVS mode against the testbed's kube-apiserver: needs the pinned tools
# (a no-op when cached).
SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -n 1)" \
	go test -count=1 -v -timeout 10m -run TestDaemonInVM ./test/ipvs/
