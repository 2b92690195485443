#!/usr/bin/env bash
# Rule-sync latency on the testbed at every scale (within about an hour, root):
# 1k, 10k Services x 10 endpoints for all contenders; 50k x 10 for Switchyard only;
# 1 Service x 10k endpoints; 10k Services x 2 endpoints; then the time to a new service and
# latency under churn at 10k x 10 (hack/bench-newsvc.sh). See hack/bench-sync.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_OUT="${BENCH_OUT:-$PWD/bench/results/$(date -u +%Y-%m-%d)}"
all="switchyard-nft,switchyard-legacy,kube-proxy-nft"
BENCH_TAG=full-main BENCH_SCALES="1000x10,10000x10,1x10000,10000x2" BENCH_CONTENDERS="$all" \
	BENCH_COLD_CAP="${BENCH_COLD_CAP:-4m}" BENCH_TIMEOUT=50m hack/bench-sync.sh
BENCH_TAG=full-50k BENCH_SCALES="50000x10" BENCH_CONTENDERS="switchyard-nft" \
	BENCH_COLD_CAP="${BENCH_COLD_CAP:-4m}" BENCH_TIMEOUT=30m hack/bench-sync.sh
# Time to a new service and latency under churn at 10k x 10 (issue 12 items 4 and 3).
BENCH_TAG=full-newsvc hack/bench-newsvc.sh
