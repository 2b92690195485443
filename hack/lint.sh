#!/usr/bin/env bash
# gofmt and go vet over the whole module and the benchmark report's module, and the
# report module's tests, which check that README.md's generated benchmark tables match
# the results files under bench/results/; fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go -C test/bench/report vet ./...
# Rewrite the tables with: go -C test/bench/report run . readme "$PWD/README.md"
go -C test/bench/report test -count=1 ./...
