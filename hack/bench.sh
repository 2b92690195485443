#!/usr/bin/env bash
# Go micro-benchmarks of rendering, with allocations. Compare runs with benchstat;
# these machines are shared, so read ratios measured in one run, not absolute times.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run='^$' -bench="${BENCH:-.}" -benchmem -count="${COUNT:-1}" ./pkg/...
