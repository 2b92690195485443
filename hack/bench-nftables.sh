#!/usr/bin/env bash
# nftables mode side by side (root, not in CI): kube-proxy v1.37.2 and Switchyard, both
# with --proxy-mode nftables, at 10k Services x 10 endpoints, then 50k x 10. One endpoint change, a new
# and a deleted Service, a burst, cold start, full sync (restart on the populated table),
# peak and steady RSS, and the bare-nft floors on each contender's own ruleset. Results,
# table and charts go to bench/results/<date>-nftables/. The machine is shared: compare
# ratios within one run; the load averages are in results.md.
# Override with BENCH_SCALES, BENCH_CONTENDERS, BENCH_CHANGES, BENCH_COLD_CAP, BENCH_OUT,
# BENCH_RESTARTS (full syncs measured per contender), BENCH_NFT_FLOORS=0 (no floors),
# BENCH_NFT_50K_CONTENDERS.
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -1)"
export BENCH_OUT="${BENCH_OUT:-$PWD/bench/results/$(date -u +%Y-%m-%d)-nftables}"
export BENCH_CONTENDERS="${BENCH_CONTENDERS:-kube-proxy-nftables,switchyard-nftables}"
export BENCH_COLD_CAP="${BENCH_COLD_CAP:-10m}"
go build -o bin/switchyard ./cmd/proxy
mkdir -p "$BENCH_OUT"
status=0
run() { # tag scales contenders timeout
	echo "$1: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	BENCH_TAG="$1" BENCH_SCALES="$2" BENCH_CONTENDERS="$3" \
		go test -tags bench -count=1 -timeout "$4" -run '^TestNFTablesBench$' -v ./test/bench/ \
		>"$BENCH_OUT/$1.log" 2>&1 || status=$?
	grep -E '^(=== RUN|--- |\s+nftbench_test|ok|FAIL|PASS)' "$BENCH_OUT/$1.log" || true
	echo "$1: load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
if [[ -n "${BENCH_SCALES:-}" ]]; then
	run "${BENCH_TAG:-nftables}" "$BENCH_SCALES" "$BENCH_CONTENDERS" "${BENCH_TIMEOUT:-90m}"
else
	run nftables-10k 10000x10 "$BENCH_CONTENDERS" 60m
	# At 50k, Switchyard first (kube-proxy is the one that may not finish) and one
	# restart each instead of three.
	BENCH_RESTARTS="${BENCH_RESTARTS:-1}" run nftables-50k 50000x10 \
		"${BENCH_NFT_50K_CONTENDERS:-switchyard-nftables,kube-proxy-nftables}" 90m
fi
# The report generator is a module of its own; see hack/bench-sync.sh.
go -C test/bench/report run . "$(cd "$BENCH_OUT" && pwd)"
exit "$status"
