#!/usr/bin/env bash
# `switchyard dry-run -f` over a generated cluster dump (default 10k Services x 10
# endpoints, one kind: List in JSON, as `kubectl get -o json` prints it): wall time,
# CPU time and peak RSS of the process, as a user runs it. When the base revision
# (DRYRUN_BASE, default main) exists, its binary is built too and run in turn with this
# one, round after round, and the ratio printed; the two outputs must be identical.
# Override with DRYRUN_SCALE, DRYRUN_ROUNDS, DRYRUN_BASE (empty: no comparison) and
# DRYRUN_MODES (default: iptables ipvs nftables, each measured in turn).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${DRYRUN_SCALE:-10000x10}"
rounds="${DRYRUN_ROUNDS:-3}"
base="${DRYRUN_BASE-main}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

go run ./test/bench/gendump -scale "$scale" -o "$tmp/dump.json"
go build -o "$tmp/switchyard" ./cmd/proxy
go build -o "$tmp/dryrunbench" ./test/bench/dryrunbench
old=()
if [[ -n "$base" ]] && git rev-parse --verify -q "$base^{commit}" >/dev/null; then
	mkdir "$tmp/base"
	git archive "$base" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && go build -o "$tmp/switchyard-base" ./cmd/proxy)
	old=(-old "$tmp/switchyard-base")
	echo "base: $base ($(git rev-parse --short "$base"))"
fi
echo "dump: $scale, $(du -m "$tmp/dump.json" | cut -f1) MB; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in ${DRYRUN_MODES:-iptables ipvs nftables}; do
	echo "mode: $mode"
	"$tmp/dryrunbench" -new "$tmp/switchyard" "${old[@]}" -rounds "$rounds" -- \
		dry-run -f "$tmp/dump.json" --cluster-cidr 10.244.0.0/16 --mode "$mode"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
