#!/usr/bin/env bash
# gofmt and go vet over the whole module and the benchmark report's module; fails on
# any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go -C test/bench/report vet ./...
