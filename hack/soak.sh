#!/usr/bin/env bash
# Churn soak on the testbed (root, about 35 minutes; not in CI): Switchyard in
# iptables mode (iptables-nft) with SOAK_SERVICES Services (default 5000) of
# SOAK_ENDPOINTS endpoints (10), churned at SOAK_RATE changes/s (20) for SOAK_DURATION
# (30m), its heap, RSS, goroutines and open fds sampled from /metrics every
# SOAK_INTERVAL (10s); then everything is deleted and the caches and tables must be
# empty. Samples, summary and chart go to SOAK_OUT (bench/results/<date>-soak/).
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -1)"
export SOAK_OUT="${SOAK_OUT:-$PWD/bench/results/$(date -u +%Y-%m-%d)-soak}"
export SOAK_DURATION="${SOAK_DURATION:-30m}"
mkdir -p "$SOAK_OUT"
echo "soak: $SOAK_DURATION of churn, results in $SOAK_OUT; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# The test binary's timeout: the churn (a whole number of s, m or h), plus 20 minutes
# for the load, the checks and the deletion.
case "$SOAK_DURATION" in
*h) minutes=$(( ${SOAK_DURATION%h} * 60 )) ;;
*m) minutes=${SOAK_DURATION%m} ;;
*s) minutes=$(( ${SOAK_DURATION%s} / 60 + 1 )) ;;
*) echo "SOAK_DURATION=$SOAK_DURATION: want a whole number of s, m or h" >&2; exit 2 ;;
esac
timeout="${SOAK_TIMEOUT:-$(( minutes + 20 ))m}"
status=0
go test -tags soak -count=1 -timeout "$timeout" -run '^TestSoak$' -v ./test/bench/ \
	>"$SOAK_OUT/soak.log" 2>&1 || status=$?
grep -E '^(=== RUN|--- |\s+soakrun_test|ok|FAIL|PASS)' "$SOAK_OUT/soak.log" || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# The chart: the report module (test/bench/report), as for make bench-sync.
go -C test/bench/report run . soak "$(cd "$SOAK_OUT" && pwd)"
exit "$status"
