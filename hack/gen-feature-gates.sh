#!/usr/bin/env bash
# Regenerates pkg/kubeproxyconfig/zz_generated_featuregates.go: every feature gate the
# pinned kube-proxy knows (alpha, beta, GA, deprecated; versioned specs with their
# defaults and locks, and the dependencies between gates), so that --feature-gates and
# featureGates accept and refuse exactly what kube-proxy does. Run after changing the
# kube-proxy pin in test/tools.
#
# The list is read by test/tools/genfeaturegates from kube-proxy's own feature gate
# registry (it imports kube-proxy's app package, so the same init functions register
# the same gates), not from --help: --help lists only the alpha and beta gates.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${root}/pkg/kubeproxyconfig/zz_generated_featuregates.go"
version="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "${root}/test/tools/go.mod")"

# -mod=readonly: the tools module's go.sum names the tools cache (hack/build-tools.sh).
(cd "${root}/test/tools" && GOFLAGS="-mod=readonly" go run ./genfeaturegates "${version}") >"${out}.tmp"
mv "${out}.tmp" "${out}"
echo "wrote ${out} ($(grep -c '^	"[A-Za-z0-9]*": {$' "${out}") gates)"
