#!/usr/bin/env bash
# `switchyard dry-run --kubeconfig` against a real kube-apiserver holding 10k Services x
# 10 endpoints, timed in turn with `kubectl get services,endpointslices -A -o json`
# (the pinned kubectl) on the same apiserver (root: the testbed's control plane runs in
# a network namespace). Not in CI. Override with DRYRUN_CLUSTER_SCALE, DRYRUN_ROUNDS.
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -1)"
export SWITCHYARD_BIN="$PWD/bin/switchyard"
go build -o "$SWITCHYARD_BIN" ./cmd/proxy
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -tags bench -count=1 -timeout "${BENCH_TIMEOUT:-30m}" -run '^TestDryRunClusterBench$' -v ./test/bench/ 2>&1 |
	grep -E '^(=== RUN|--- |\s+dryruncluster_test|ok|FAIL|PASS)|panic'
