package nftmodel

// IP plan of the fixtures (test/nftables/world_test.go, which generates
// them): node-1 10.250.0.11 / fd00:250::11 on the cluster segment,
// 10.251.0.11 / fd00:251::11 on the outside one (iif sy-outside), pod
// bridge sy-br 10.244.1.1 / fd00:244:1::1. Pods: web-1 10.244.1.2, local-1
// 10.244.1.3 (node-1), web-2 10.244.2.2, ext-1 10.244.2.3 (node-2); a
// client pod 10.244.1.99 that is no endpoint. Outside client 10.251.0.100.
// Cluster CIDR 10.244.0.0/16, service CIDR 10.96.0.0/16; cluster IPs
// 10.96.1.1 (web, 3 endpoints, tcp/80 and udp/53), .2 nodeport (30080),
// .3 local (eTP Local, 30081), .4 local-remote (eTP Local, no local
// endpoint, 30082), .5 lb (10.252.0.20, source range the outside client),
// .6 lb-denied (10.252.0.21, range 192.0.2.0/24), .7 external
// (10.252.0.10), .8 affinity, .9 itp-local (no local endpoint), .10 empty,
// .11 empty-udp, .12 empty-nodeport (30085), .13 lb-local (10.252.0.22,
// eTP Local, 30086).

import (
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func loadFixture(t *testing.T, family string) *Ruleset {
	t.Helper()
	text, err := os.ReadFile("testdata/kube-proxy-" + family + ".nft")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Parse(string(text))
	if err != nil {
		t.Fatalf("parsing the %s fixture: %v", family, err)
	}
	return rs
}

var node1 = Node{LocalAddrs: addrs("10.250.0.11", "10.251.0.11", "10.244.1.1", "fd00:250::11", "fd00:251::11", "fd00:244:1::1")}

func addrs(list ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range list {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// Clients of the packet-path cases.
func fromPod(src string) func(Packet) Packet {
	return func(p Packet) Packet {
		p.Src, p.Origin, p.InIface = netip.MustParseAddr(src), FromPodOrExternal, "sy-br"
		return p
	}
}

func fromOutside(src string) func(Packet) Packet {
	return func(p Packet) Packet {
		p.Src, p.Origin, p.InIface = netip.MustParseAddr(src), FromPodOrExternal, "sy-outside"
		return p
	}
}

func fromNode(src string) func(Packet) Packet {
	return func(p Packet) Packet {
		p.Src, p.Origin = netip.MustParseAddr(src), FromLocalProcess
		return p
	}
}

// summarize turns a result into one line per outcome, without traces.
func summarize(r Result) []string {
	var lines []string
	for _, o := range r.Outcomes {
		lines = append(lines, o.String())
	}
	slices.Sort(lines)
	return lines
}

// TestKubeProxyFixtures traces packets through the real tables of the
// pinned kube-proxy v1.37.2 and checks where each can go. test/nftables
// checks the same kind of prediction against real connections.
//
// mutation-checked: making dynamic sets always hold the source (contains)
// fails "affinity miss"; treating every nat chain as already decided
// (natDecided always true) loses every DNAT and fails 8 cases; treating fib
// saddr type as always unicast fails "node to local-remote node port";
// ignoring "!=" (negate) fails "lb from outside" and "lb-denied".
func TestKubeProxyFixtures(t *testing.T) {
	ip4, ip6 := loadFixture(t, "ip"), loadFixture(t, "ip6")
	const (
		third   = "ACCEPT p=0.3333 endpoint="
		half    = "ACCEPT p=0.5000 endpoint="
		certain = "ACCEPT p=1.0000 endpoint="
	)
	for _, tc := range []struct {
		name     string
		client   func(Packet) Packet
		proto    string
		dst      string
		affinity string
		want     []string
	}{
		{"pod to cluster IP", fromPod("10.244.1.99"), "tcp", "10.96.1.1:80", "",
			[]string{third + "10.244.1.2:80", third + "10.244.2.2:80", third + "10.244.2.3:80"}},
		{"node to cluster IP is masqueraded", fromNode("10.250.0.11"), "tcp", "10.96.1.1:80", "",
			[]string{third + "10.244.1.2:80 masquerade", third + "10.244.2.2:80 masquerade", third + "10.244.2.3:80 masquerade"}},
		{"outside to cluster IP is masqueraded", fromOutside("10.251.0.100"), "tcp", "10.96.1.1:80", "",
			[]string{third + "10.244.1.2:80 masquerade", third + "10.244.2.2:80 masquerade", third + "10.244.2.3:80 masquerade"}},
		{"hairpin: a pod reaching itself is masqueraded", fromPod("10.244.1.2"), "udp", "10.96.1.1:53", "",
			[]string{third + "10.244.1.2:53 masquerade", third + "10.244.2.2:53", third + "10.244.2.3:53"}},
		{"cluster IP, port not served, from pod", fromPod("10.244.1.99"), "tcp", "10.96.1.1:81", "", []string{"REJECT p=1.0000"}},
		{"cluster IP, port not served, from node", fromNode("10.250.0.11"), "tcp", "10.96.1.1:81", "", []string{"REJECT p=1.0000"}},
		{"unallocated cluster IP", fromPod("10.244.1.99"), "tcp", "10.96.1.200:80", "", []string{"DROP p=1.0000"}},
		{"node port from outside", fromOutside("10.251.0.100"), "tcp", "10.250.0.11:30080", "",
			[]string{certain + "10.244.2.2:8080 masquerade"}},
		{"node port on an address not in nodeport-ips", fromOutside("10.251.0.100"), "tcp", "10.251.0.11:30080", "",
			[]string{"ACCEPT p=1.0000 local"}},
		{"eTP Local node port from outside keeps the source", fromOutside("10.251.0.100"), "tcp", "10.250.0.11:30081", "",
			[]string{certain + "10.244.1.2:80"}},
		{"eTP Local node port, no local endpoint, from outside", fromOutside("10.251.0.100"), "tcp", "10.250.0.11:30082", "",
			[]string{"DROP p=1.0000 local"}},
		{"eTP Local node port, no local endpoint, from pod", fromPod("10.244.1.99"), "tcp", "10.250.0.11:30082", "",
			[]string{certain + "10.244.2.2:80"}},
		{"node to local-remote node port", fromNode("10.250.0.11"), "tcp", "10.250.0.11:30082", "",
			[]string{certain + "10.244.2.2:80 masquerade"}},
		{"lb from outside, source allowed", fromOutside("10.251.0.100"), "tcp", "10.252.0.20:80", "",
			[]string{certain + "10.244.2.2:80 masquerade"}},
		{"lb from another source", fromOutside("10.251.0.101"), "tcp", "10.252.0.20:80", "", []string{"DROP p=1.0000"}},
		{"lb-denied from outside", fromOutside("10.251.0.100"), "tcp", "10.252.0.21:80", "", []string{"DROP p=1.0000"}},
		{"lb-local from outside", fromOutside("10.251.0.100"), "tcp", "10.252.0.22:80", "", []string{certain + "10.244.1.3:80"}},
		{"lb-local from pod short-circuits to every endpoint", fromPod("10.244.1.99"), "tcp", "10.252.0.22:80", "",
			[]string{half + "10.244.1.3:80", half + "10.244.2.2:80"}},
		{"external IP from outside", fromOutside("10.251.0.100"), "tcp", "10.252.0.10:80", "",
			[]string{certain + "10.244.2.3:9376 masquerade"}},
		{"affinity miss", fromPod("10.244.1.99"), "tcp", "10.96.1.8:80", "", []string{
			half + "10.244.1.2:80 affinity=affinity-SVVSUFJF-nft/affinity/tcp/http__10.244.1.2/80",
			half + "10.244.2.2:80 affinity=affinity-FUMFLA2V-nft/affinity/tcp/http__10.244.2.2/80"}},
		{"affinity hit", fromPod("10.244.1.99"), "tcp", "10.96.1.8:80", "affinity-FUMFLA2V-nft/affinity/tcp/http__10.244.2.2/80",
			[]string{certain + "10.244.2.2:80 affinity=affinity-FUMFLA2V-nft/affinity/tcp/http__10.244.2.2/80"}},
		{"iTP Local, no local endpoint", fromPod("10.244.1.99"), "tcp", "10.96.1.9:80", "", []string{"DROP p=1.0000"}},
		{"no endpoints", fromPod("10.244.1.99"), "tcp", "10.96.1.10:80", "", []string{"REJECT p=1.0000"}},
		{"no endpoints, from node", fromNode("10.250.0.11"), "tcp", "10.96.1.10:80", "", []string{"REJECT p=1.0000"}},
		{"no endpoints, udp", fromPod("10.244.1.99"), "udp", "10.96.1.11:53", "", []string{"REJECT p=1.0000"}},
		{"no endpoints, node port", fromOutside("10.251.0.100"), "tcp", "10.250.0.11:30085", "", []string{"REJECT p=1.0000 local"}},
		{"IPv6 cluster IP from pod", fromPod("fd00:244:1::99"), "tcp", "[fd00:96::101]:80", "",
			[]string{third + "[fd00:244:1::2]:80", third + "[fd00:244:2::2]:80", third + "[fd00:244:2::3]:80"}},
		{"IPv6 node port from outside", fromOutside("fd00:251::100"), "tcp", "[fd00:250::11]:30080", "",
			[]string{certain + "[fd00:244:2::2]:8080 masquerade"}},
		{"IPv6 no endpoints", fromPod("fd00:244:1::99"), "tcp", "[fd00:96::10a]:80", "", []string{"REJECT p=1.0000"}},
		{"IPv6 unallocated cluster IP", fromPod("fd00:244:1::99"), "tcp", "[fd00:96::1ff]:80", "", []string{"DROP p=1.0000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.MustParseAddrPort(tc.dst)
			pkt := tc.client(Packet{Proto: tc.proto, Dst: dst.Addr(), DstPort: int(dst.Port()), SrcPort: 40000})
			rs := ip4
			if dst.Addr().Is6() {
				rs = ip6
			}
			result, err := Trace(rs, node1, pkt, Options{AffinityHit: tc.affinity})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summarize(result)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s\n%s", diff, result)
			}
		})
	}
}
