#!/usr/bin/env bash
# Rule-sync latency on the testbed, quick pass (a few minutes, root): Switchyard
# (iptables-nft, iptables-legacy) and kube-proxy v1.37.2 (iptables-nft) side by side at
# 1k Services x 10 endpoints. Results, table and charts go to bench/results/<date>/.
# Override with BENCH_SCALES, BENCH_CONTENDERS, BENCH_CHANGES, BENCH_COLD_CAP, BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -1)"
export BENCH_OUT="${BENCH_OUT:-$PWD/bench/results/$(date -u +%Y-%m-%d)}"
export BENCH_SCALES="${BENCH_SCALES:-1000x10}"
export BENCH_CONTENDERS="${BENCH_CONTENDERS:-switchyard-nft,switchyard-legacy,kube-proxy-nft}"
export BENCH_TAG="${BENCH_TAG:-sync}"
go build -o bin/switchyard ./cmd/proxy
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$BENCH_OUT"
status=0
go test -tags bench -count=1 -timeout "${BENCH_TIMEOUT:-60m}" -run '^TestSyncBench$' -v ./test/bench/ \
	>"$BENCH_OUT/$BENCH_TAG.log" 2>&1 || status=$?
grep -E '^(=== RUN|--- |\s+syncbench_test|ok|FAIL|PASS)' "$BENCH_OUT/$BENCH_TAG.log" || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# The report generator is a module of its own (test/bench/report), so that its plotting
# dependencies stay out of Switchyard's go.mod; -C runs it there, so the path is absolute.
go -C test/bench/report run . "$(cd "$BENCH_OUT" && pwd)"
exit "$status"
