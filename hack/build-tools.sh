#!/usr/bin/env bash
# Builds the pinned kube-apiserver, etcd, kubectl and kube-proxy from the
# test/tools module into .cache/tools/<key>/bin, where <key> is the first 12
# hex digits of sha256(test/tools/go.sum): a change of any pinned version
# gives a new directory, and an unchanged go.sum reuses the binaries.
# Prints the bin directory as its last line (hack/e2e.sh and hack/sandbox.sh
# read it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_mod="${root}/test/tools"
key="$(sha256sum "${tools_mod}/go.sum" | cut -c1-12)"
bin_dir="${root}/.cache/tools/${key}/bin"

# Binary name -> package inside the tools module's build list.
declare -A packages=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
	[kubectl]=k8s.io/kubernetes/cmd/kubectl
	[etcd]=go.etcd.io/etcd/server/v3
)

missing=()
for name in kube-apiserver etcd kubectl kube-proxy; do
	[ -x "${bin_dir}/${name}" ] || missing+=("${name}")
done

if [ "${#missing[@]}" -gt 0 ]; then
	mkdir -p "${bin_dir}"
	start=$(date +%s)
	for name in "${missing[@]}"; do
		echo "build-tools: building ${name}" >&2
		# Build to a temporary name and rename, so an interrupted build never
		# leaves a half-written binary that a later run would take as done.
		# -mod=readonly: a go.sum that lacks an entry must fail here, not be
		# rewritten, since its hash names the cache directory.
		(cd "${tools_mod}" && GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 go build -trimpath \
			-o "${bin_dir}/.${name}.tmp" "${packages[${name}]}")
		mv "${bin_dir}/.${name}.tmp" "${bin_dir}/${name}"
	done
	echo "build-tools: built ${missing[*]} in $(($(date +%s) - start))s" >&2
else
	echo "build-tools: cached" >&2
fi

echo "${bin_dir}"
