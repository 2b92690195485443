#!/usr/bin/env bash
# Runs every Go fuzz target under pkg/ and cmd/ for $FUZZTIME each (default 60s).
# Fuzzing finds panics in the manifest reader and the model conversion; a finding is
# written to testdata/fuzz/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
found=0
while IFS=: read -r file target; do
  pkg="./$(dirname "$file")"
  echo "fuzz: $pkg $target ($fuzztime)"
  go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
  found=$((found + 1))
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' pkg cmd | sed -E 's/func //' | sort -u)
echo "fuzz: ran $found targets"
