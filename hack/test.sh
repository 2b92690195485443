#!/usr/bin/env bash
# Unit tests: no root, no cluster. Race detector on, then a short pass of every fuzz
# target so that CI exercises them too (longer runs: make fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 ./pkg/... ./cmd/...
FUZZTIME=${FUZZTIME:-5s} hack/fuzz.sh
