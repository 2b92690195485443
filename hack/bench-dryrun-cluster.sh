#!/usr/bin/env bash
# `switchyard dry-run --kubeconfig` against a real kube-apiserver holding 10k Services x
# 10 endpoints, timed in turn with `kubectl get services,endpointslices -A -o json`
# (the pinned kubectl) on the same apiserver (root: the testbed's control plane runs in
# a network namespace). main's binary (DRYRUN_BASE; empty: none) is timed in the same
# rounds. Not in CI. Override with DRYRUN_CLUSTER_SCALE, DRYRUN_ROUNDS, DRYRUN_BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -1)"
export SWITCHYARD_BIN="$PWD/bin/switchyard"
go build -o "$SWITCHYARD_BIN" ./cmd/proxy
base="${DRYRUN_BASE-main}"
if [[ -n "$base" ]] && git rev-parse --verify -q "$base^{commit}" >/dev/null; then
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	git archive "$base" | tar -x -C "$tmp"
	(cd "$tmp" && go build -o "$tmp/switchyard-base" ./cmd/proxy)
	export SWITCHYARD_BASE_BIN="$tmp/switchyard-base"
	echo "base: $base ($(git rev-parse --short "$base"))"
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -tags bench -count=1 -timeout "${BENCH_TIMEOUT:-30m}" -run '^TestDryRunClusterBench$' -v ./test/bench/ 2>&1 |
	grep -E '^(=== RUN|--- |\s+dryruncluster_test|ok|FAIL|PASS)|panic'
