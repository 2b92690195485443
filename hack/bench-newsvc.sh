#!/usr/bin/env bash
# Time to a new service and endpoint churn at 10k Services x 10 endpoints (issue 12
# items 4 and 3; root, about 15 minutes): Switchyard (iptables-nft) and kube-proxy
# v1.37.2 (iptables-nft) side by side. BENCH_NEWSVC Services are created with their
# EndpointSlice and timed to a real connection; then BENCH_CHURN_RATE endpoint
# changes per second for BENCH_CHURN_DURATION, each timed from outside with nft
# monitor. The one-change, add/delete and burst phases are skipped (BENCH_STEADY=0);
# make bench-full runs those. See hack/bench-sync.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_OUT="${BENCH_OUT:-$PWD/bench/results/$(date -u +%Y-%m-%d)-newsvc}"
export BENCH_TAG="${BENCH_TAG:-newsvc}"
export BENCH_SCALES="${BENCH_SCALES:-10000x10}"
export BENCH_CONTENDERS="${BENCH_CONTENDERS:-switchyard-nft,kube-proxy-nft}"
export BENCH_STEADY="${BENCH_STEADY:-0}"
export BENCH_NEWSVC="${BENCH_NEWSVC:-12}"
export BENCH_CHURN_RATE="${BENCH_CHURN_RATE:-50}"
export BENCH_CHURN_DURATION="${BENCH_CHURN_DURATION:-60s}"
# kube-proxy does not finish a cold start at 10k x 10 in minutes here; it is then
# brought to steady state incrementally (see TestSyncBench), so a long cap only waits.
export BENCH_COLD_CAP="${BENCH_COLD_CAP:-90s}"
export BENCH_NOFLUSH_CAP="${BENCH_NOFLUSH_CAP:-1s}"
export BENCH_TIMEOUT="${BENCH_TIMEOUT:-40m}"
exec hack/bench-sync.sh
