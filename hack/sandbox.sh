#!/usr/bin/env bash
# `make sandbox`: a control plane with two nodes, four pods and example
# services on the testbed (test/sandbox), up until Ctrl-C, then torn down.
# Needs root. Switchyard (built from the working tree) runs on both nodes;
# pass --kube-proxy to run the reference kube-proxy there instead, or
# --no-proxy for neither.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

if [ "$(id -u)" -ne 0 ]; then
	echo "sandbox: needs root for network namespaces (run: sudo make sandbox)" >&2
	exit 1
fi

SWITCHYARD_TOOLS_BIN="$(hack/build-tools.sh | tail -n 1)"
export SWITCHYARD_TOOLS_BIN SWITCHYARD_SANDBOX=1

# Build the test binary and exec it, so Ctrl-C goes straight to it and its
# cleanup runs (rather than through `go test`).
mkdir -p .cache/sandbox
go test -c -o .cache/sandbox/sandbox.test ./test/sandbox
kube_proxy=false
switchyard=true
for arg in "$@"; do
	case "${arg}" in
	--kube-proxy) kube_proxy=true ;;
	--no-proxy) switchyard=false ;;
	*) echo "sandbox: unknown argument ${arg} (want --kube-proxy or --no-proxy)" >&2; exit 2 ;;
	esac
done
exec .cache/sandbox/sandbox.test -test.run '^TestSandbox$' -test.v -test.timeout 0 \
	-kube-proxy="${kube_proxy}" -switchyard="${switchyard}"
