#!/usr/bin/env bash
# Unit tests: no root, no cluster. Race detector on, then a short pass of every fuzz
# target so that CI exercises them too (longer runs: make fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 ./pkg/... ./cmd/...
# The short pass is a count of executions, not a duration: with a duration, Go's fuzz
# coordinator can fail a target with a bare "context deadline exceeded" and no crasher
# when a worker is still busy as the deadline fires on a loaded machine (a race in
# internal/fuzz; seen here on FuzzRead under CI load). A count has no deadline to race.
FUZZTIME=${FUZZTIME:-3000x} hack/fuzz.sh
