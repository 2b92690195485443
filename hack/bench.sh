#!/usr/bin/env bash
# Go micro-benchmarks of rendering and of reading manifests, with allocations, then the
# whole `switchyard dry-run -f` over a generated 10k x 10 dump against main's binary
# (hack/bench-dryrun.sh; BENCH_DRYRUN=0 skips it). Compare runs with benchstat; these
# machines are shared, so read ratios measured in one run, not absolute times.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run='^$' -bench="${BENCH:-.}" -benchmem -count="${COUNT:-1}" ./pkg/...
if [[ "${BENCH_DRYRUN:-1}" != 0 ]]; then
	hack/bench-dryrun.sh
fi
