#!/usr/bin/env bash
# Installs the Debian packages the privileged testbed (test/testbed) needs:
# iproute2 for network namespaces, iptables/ipset/conntrack for kube-proxy
# and Switchyard, openssl for the service-account key, curl for poking at
# the sandbox by hand; zsh and bash-completion for cmd/proxy's tests of the
# shell completion scripts (`switchyard completion bash|zsh`). Idempotent:
# apt-get install is a no-op for packages already present, so CI can run it
# on every run.
set -euo pipefail

packages=(
	iproute2
	iptables
	ipset
	nftables
	ipvsadm
	conntrack
	kmod
	openssl
	ca-certificates
	curl
	procps
	zsh
	bash-completion
)

missing=()
for pkg in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$pkg")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "ci-deps: all packages present"
	exit 0
fi

echo "ci-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
