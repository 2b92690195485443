package tracer

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// ipvsRules is a cut-down set of kube-proxy's IPVS-mode companion rules: masquerade
// for off-cluster clients of cluster IPs, node ports and hairpin, a load-balancer
// source-range firewall, and the KUBE-IPVS-FILTER reject of unknown ports on VIPs.
const ipvsRules = `*filter
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
-A INPUT -j KUBE-PROXY-FIREWALL
-A INPUT -j KUBE-IPVS-FILTER
-A KUBE-PROXY-FIREWALL -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL
-A KUBE-SOURCE-RANGES-FIREWALL -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
-A KUBE-POSTROUTING -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN
-A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
COMMIT
`

// ipvsSets hold cluster IP 172.30.0.1:80 and load balancer 1.2.3.4:80 (open to
// 203.0.113.0/25), node port 3001, the hairpin entry of endpoint 10.180.0.1:8080,
// and the VIPs on kube-ipvs0.
var ipvsSets = map[string]*IPSet{
	"KUBE-CLUSTER-IP":                {Type: "hash:ip,port", Members: []string{"172.30.0.1,tcp:80"}},
	"KUBE-LOAD-BALANCER":             {Type: "hash:ip,port", Members: []string{"1.2.3.4,tcp:80"}},
	"KUBE-LOAD-BALANCER-FW":          {Type: "hash:ip,port", Members: []string{"1.2.3.4,tcp:80"}},
	"KUBE-LOAD-BALANCER-SOURCE-CIDR": {Type: "hash:ip,port,net", Members: []string{"1.2.3.4,tcp:80,203.0.113.0/25"}},
	"KUBE-LOOP-BACK":                 {Type: "hash:ip,port,ip", Members: []string{"10.180.0.1,tcp:8080,10.180.0.1"}},
	"KUBE-NODE-PORT-TCP":             {Type: "bitmap:port", Members: []string{"3001"}},
	"KUBE-NODE-PORT-LOCAL-TCP":       {Type: "bitmap:port"},
	"KUBE-IPVS-IPS":                  {Type: "hash:ip", Members: []string{"172.30.0.1", "1.2.3.4"}},
}

// TestTraceIPVS checks the IPVS path: the companion rules before the virtual server
// (firewall, reject of unknown ports), the DNAT to the picked real server, and the
// masquerade decided on the way out, including hairpin through KUBE-LOOP-BACK
// (dst,dst,src after the DNAT).
// mutation-checked: running the POSTROUTING hooks before the DNAT in runIPVS fails
// "hairpin"; matching a bitmap:port member only as proto:port text fails "node
// port" (and TestIPSetMatching's bitmap cases).
func TestTraceIPVS(t *testing.T) {
	rs := mustRuleset(t, ruleset.IPv4, ipvsRules)
	// The VIPs are bound on kube-ipvs0, so they are local addresses of the node.
	node := Node{LocalAddrs: []netip.Addr{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("172.30.0.1"), netip.MustParseAddr("1.2.3.4")}}
	rs1 := netip.MustParseAddrPort("10.180.0.1:8080")
	tests := []struct {
		name         string
		src, dst     string
		port         int
		origin       Origin
		dest         netip.AddrPort
		wantVerdict  Verdict
		wantEndpoint string
		wantMasq     bool
	}{
		{name: "pod to cluster IP", src: "10.0.1.5", dst: "172.30.0.1", port: 80, dest: rs1,
			wantVerdict: Accept, wantEndpoint: "10.180.0.1:8080"},
		{name: "off-cluster client to cluster IP is masqueraded", src: "203.0.113.7", dst: "172.30.0.1", port: 80, dest: rs1,
			wantVerdict: Accept, wantEndpoint: "10.180.0.1:8080", wantMasq: true},
		{name: "hairpin", src: "10.180.0.1", dst: "172.30.0.1", port: 80, dest: rs1,
			wantVerdict: Accept, wantEndpoint: "10.180.0.1:8080", wantMasq: true},
		{name: "node port", src: "203.0.113.7", dst: "192.168.0.2", port: 3001, dest: rs1,
			wantVerdict: Accept, wantEndpoint: "10.180.0.1:8080", wantMasq: true},
		{name: "local process to cluster IP", src: "10.0.1.9", dst: "172.30.0.1", port: 80, origin: FromLocalProcess, dest: rs1,
			wantVerdict: Accept, wantEndpoint: "10.180.0.1:8080"},
		{name: "no real servers", src: "10.0.1.5", dst: "172.30.0.1", port: 80,
			wantVerdict: Reject},
		{name: "load balancer from an allowed range", src: "203.0.113.7", dst: "1.2.3.4", port: 80, dest: rs1,
			wantVerdict: Accept, wantEndpoint: "10.180.0.1:8080"},
		{name: "load balancer from outside the ranges", src: "203.0.113.200", dst: "1.2.3.4", port: 80, dest: rs1,
			wantVerdict: Drop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkt := Packet{Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst), Proto: "tcp", SrcPort: 40000, DstPort: tc.port, Origin: tc.origin}
			got, err := Trace(rs, node, pkt, Options{IPSets: ipvsSets, IPVS: &IPVS{VirtualServer: "TCP/" + tc.dst, Dest: tc.dest}})
			if err != nil {
				t.Fatalf("Trace: %v", err)
			}
			if len(got.Outcomes) != 1 {
				t.Fatalf("%d outcomes, want 1\n%s", len(got.Outcomes), got)
			}
			o := got.Outcomes[0]
			if o.Verdict != tc.wantVerdict || o.Endpoint != tc.wantEndpoint || o.Masquerade != tc.wantMasq {
				t.Errorf("got %s endpoint %q masquerade %v, want %s endpoint %q masquerade %v\n%s",
					o.Verdict, o.Endpoint, o.Masquerade, tc.wantVerdict, tc.wantEndpoint, tc.wantMasq, got)
			}
		})
	}
}

// TestTraceIPVSFilterRejectsUnknownPort checks that a new connection to a VIP on a
// port no service uses is rejected by KUBE-IPVS-FILTER (kubernetes#72236) before
// reaching a local socket: the trace without a virtual server goes through INPUT.
func TestTraceIPVSFilterRejectsUnknownPort(t *testing.T) {
	rs := mustRuleset(t, ruleset.IPv4, ipvsRules)
	node := Node{LocalAddrs: []netip.Addr{netip.MustParseAddr("172.30.0.1")}}
	pkt := Packet{Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("172.30.0.1"), Proto: "tcp", DstPort: 22}
	got, err := Trace(rs, node, pkt, Options{IPSets: ipvsSets})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Verdict{Reject}, got.Verdicts()); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s\n%s", diff, got)
	}
}

// TestIPSetMatching checks each set type's member syntax and the flags.
func TestIPSetMatching(t *testing.T) {
	pkt := &Packet{Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("172.30.0.1"), Proto: "udp", SrcPort: 5000, DstPort: 53}
	tests := []struct {
		set   IPSet
		flags string
		want  bool
	}{
		{IPSet{"hash:ip", []string{"172.30.0.1"}}, "dst", true},
		{IPSet{"hash:ip", []string{"172.30.0.1"}}, "src", false},
		{IPSet{"hash:ip,port", []string{"172.30.0.1,udp:53"}}, "dst,dst", true},
		{IPSet{"hash:ip,port", []string{"172.30.0.1,tcp:53"}}, "dst,dst", false},
		{IPSet{"hash:ip,port", []string{"172.30.0.1,udp:53"}}, "dst", false}, // too few flags
		{IPSet{"hash:ip,port,ip", []string{"172.30.0.1,udp:53,10.0.1.5"}}, "dst,dst,src", true},
		{IPSet{"hash:ip,port,net", []string{"172.30.0.1,udp:53,10.0.0.0/16"}}, "dst,dst,src", true},
		{IPSet{"hash:ip,port,net", []string{"172.30.0.1,udp:53,10.1.0.0/16"}}, "dst,dst,src", false},
		{IPSet{"bitmap:port", []string{"53"}}, "dst", true},
		{IPSet{"bitmap:port", []string{"5000"}}, "src", true},
	}
	for _, tc := range tests {
		t.Run(tc.set.Type+" "+strings.Join(tc.set.Members, " ")+" "+tc.flags, func(t *testing.T) {
			got, err := tc.set.contains(pkt, strings.Split(tc.flags, ","))
			if err != nil || got != tc.want {
				t.Errorf("contains = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := (&IPSet{"hash:ip,port", []string{"172.30.0.1"}}).contains(pkt, []string{"dst", "dst"}); err == nil {
		t.Error("a member with too few fields was accepted")
	}
}
