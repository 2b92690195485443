#!/usr/bin/env bash
# Periodic full syncs at scale (issue 11, item 3; docs/reliability.md "Full syncs"), on
# the testbed (root, ~10 minutes per backend at 10k x 10): a one-endpoint change made
# while the periodic sync runs, the periodic sync's duration and CPU, and failures of
# new and established TCP connections probed from a client pod throughout.
# Results go to bench/results/<date>/fullsync-$BENCH_TAG.json and .log.
# Override with BENCH_SCALE (10000x10), BENCH_BACKENDS (nft; "nft,legacy,nftables":
# nftables is --proxy-mode nftables),
# BENCH_FULLSYNC_PERIOD (45s), BENCH_FULLSYNC_ROUNDS (3), BENCH_TAG, BENCH_OUT,
# SWITCHYARD_BIN (to measure another build).
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -1)"
export BENCH_OUT="${BENCH_OUT:-$PWD/bench/results/$(date -u +%Y-%m-%d)-fullsync}"
export BENCH_TAG="${BENCH_TAG:-$(git rev-parse --short HEAD)}"
export BENCH_COMMIT="${BENCH_COMMIT:-$(git rev-parse --short HEAD)}"
if [ -z "${SWITCHYARD_BIN:-}" ]; then
	go build -o bin/switchyard ./cmd/proxy
fi
mkdir -p "$BENCH_OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
go test -tags bench -count=1 -timeout "${BENCH_TIMEOUT:-60m}" -run '^TestFullSyncBench$' -v ./test/bench/ \
	>"$BENCH_OUT/fullsync-$BENCH_TAG.log" 2>&1 || status=$?
grep -E '^(=== RUN|--- |\s+fullsync_test|ok|FAIL|PASS)' "$BENCH_OUT/fullsync-$BENCH_TAG.log" || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
