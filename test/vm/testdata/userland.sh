#!/bin/sh
# Runs inside the guest (TestUserland): proves that the host's iptables (nft and legacy),
# ipset, iproute2 and conntrack work there, with network namespaces, veth and a bridge.
set -eu
step() { echo "== $*"; }

step "netns and veth"
ip netns add a
ip link add veth-host type veth peer name veth-a
ip link set veth-a netns a
ip addr add 10.99.0.1/24 dev veth-host
ip link set veth-host up
ip -n a addr add 10.99.0.2/24 dev veth-a
ip -n a link set veth-a up
ip -n a link set lo up
ip netns exec a ip -br addr show dev veth-a
ping -c 1 -W 2 10.99.0.2

step "iptables-nft restore"
iptables-restore <<'RULES'
*filter
:INPUT ACCEPT [0:0]
:SWITCHYARD-TEST - [0:0]
-A INPUT -s 10.99.0.2/32 -m comment --comment "switchyard test" -j SWITCHYARD-TEST
-A SWITCHYARD-TEST -p icmp -j DROP
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.99.0.0/24 ! -d 10.99.0.0/24 -m addrtype ! --dst-type LOCAL -j MASQUERADE
COMMIT
RULES
iptables-save | grep -E '^(-A|:SWITCHYARD)'
# The rule drops the echo replies from namespace a, so ping must now fail.
if ping -c 1 -W 1 10.99.0.2 >/dev/null; then
  echo "ping went through the DROP rule"; exit 1
fi
echo "ping blocked by the rule, as expected"
iptables -F SWITCHYARD-TEST
ping -c 1 -W 2 10.99.0.2 >/dev/null
echo "ping works again after flushing the chain"

step "ipset with an iptables match"
ipset create KUBE-TEST-CLUSTER-IP hash:ip,port
ipset add KUBE-TEST-CLUSTER-IP 10.0.0.1,tcp:80
ipset test KUBE-TEST-CLUSTER-IP 10.0.0.1,tcp:80
iptables -t nat -A POSTROUTING -m set --match-set KUBE-TEST-CLUSTER-IP dst,dst -j MASQUERADE
iptables -t nat -S POSTROUTING | grep match-set
ipset list -t KUBE-TEST-CLUSTER-IP

step "iptables-legacy"
iptables-legacy -t nat -N SWITCHYARD-LEGACY
iptables-legacy -t nat -A SWITCHYARD-LEGACY -p tcp --dport 80 -j DNAT --to-destination 10.99.0.2:8080
iptables-legacy-save -t nat | grep SWITCHYARD-LEGACY

step "bridge"
ip link add br-test type bridge
ip link set veth-host master br-test
ip link set br-test up
ip -br link show master br-test

step "conntrack"
if command -v conntrack >/dev/null; then
  conntrack -L >/dev/null 2>&1 && echo "conntrack -L works"
fi

echo "userland OK"
