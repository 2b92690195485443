package nftmodel

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// knftablesDump is a small kube-proxy-like table in the line form knftables
// writes for `nft -f` and prints from Fake.Dump: numeric priorities, "mark
// set mark or", "dnat ip addr . port to", "@set" attached, element comments.
const knftablesDump = `add table ip kube-proxy { comment "rules for kube-proxy" ; }
add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy services
add chain ip kube-proxy masquerading
add chain ip kube-proxy reject-chain { comment "helper" ; }
add chain ip kube-proxy service-ABC-ns/web/tcp/http
add chain ip kube-proxy external-ABC-ns/web/tcp/http
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }
add rule ip kube-proxy filter-forward ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy services ip daddr @cluster-ips ip saddr != 10.244.0.0/16 mark set mark or 0x4000
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy service-ABC-ns/web/tcp/http meta l4proto tcp dnat ip addr . port to numgen random mod 4 map { 0 : 10.244.1.2 . 80 , 1 : 10.244.1.3 . 80 , 2 : 10.244.2.2 . 80 , 3 : 10.244.2.3 . 8080 }
add rule ip kube-proxy external-ABC-ns/web/tcp/http mark set mark or 0x4000 comment "masquerade"
add rule ip kube-proxy external-ABC-ns/web/tcp/http goto service-ABC-ns/web/tcp/http
add element ip kube-proxy cluster-ips { 10.96.0.10 }
add element ip kube-proxy cluster-ips { 10.96.0.11 }
add element ip kube-proxy service-ips { 10.96.0.10 . tcp . 80 : goto service-ABC-ns/web/tcp/http }
add element ip kube-proxy service-nodeports { tcp . 30080 : goto external-ABC-ns/web/tcp/http }
add element ip kube-proxy no-endpoint-services { 10.96.0.11 . tcp . 80 comment "ns/empty:http" : goto reject-chain }
`

// TestLineForm parses knftables' line form and traces through it, including
// the return/jump semantics the block-form fixtures do not use.
func TestLineForm(t *testing.T) {
	rs, err := Parse(knftablesDump)
	if err != nil {
		t.Fatal(err)
	}
	node := Node{LocalAddrs: addrs("10.250.0.11")}
	for _, tc := range []struct {
		name   string
		client func(Packet) Packet
		dst    string
		want   []string
	}{
		{"pod to cluster IP, four ways", fromPod("10.244.1.99"), "10.96.0.10:80", []string{
			"ACCEPT p=0.2500 endpoint=10.244.1.2:80", "ACCEPT p=0.2500 endpoint=10.244.1.3:80",
			"ACCEPT p=0.2500 endpoint=10.244.2.2:80", "ACCEPT p=0.2500 endpoint=10.244.2.3:8080"}},
		{"outside to node port: marked, so masqueraded", fromOutside("10.251.0.100"), "10.250.0.11:30080", []string{
			"ACCEPT p=0.2500 endpoint=10.244.1.2:80 masquerade", "ACCEPT p=0.2500 endpoint=10.244.1.3:80 masquerade",
			"ACCEPT p=0.2500 endpoint=10.244.2.2:80 masquerade", "ACCEPT p=0.2500 endpoint=10.244.2.3:8080 masquerade"}},
		{"no endpoints", fromPod("10.244.1.99"), "10.96.0.11:80", []string{"REJECT p=1.0000"}},
		{"not a service", fromPod("10.244.1.99"), "10.96.0.12:80", []string{"ACCEPT p=1.0000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.MustParseAddrPort(tc.dst)
			pkt := tc.client(Packet{Proto: "tcp", Dst: dst.Addr(), DstPort: int(dst.Port())})
			result, err := Trace(rs, node, pkt, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summarize(result)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s\n%s", diff, result)
			}
		})
	}
}

// TestParseIsStrict checks that what the model does not understand, or what
// the kernel would refuse, is an error and not skipped.
func TestParseIsStrict(t *testing.T) {
	const head = "table ip t {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n"
	for _, tc := range []struct {
		name, text, wantErr string
	}{
		{"unknown statement", head + "\t\tlog prefix \"x\"\n\t}\n}\n", `unknown statement "log"`},
		{"unknown selector", head + "\t\tip dscp 4 accept\n\t}\n}\n", `unknown statement "ip"`},
		{"jump to a missing chain", head + "\t\tjump nowhere\n\t}\n}\n", `missing chain "nowhere"`},
		{"missing set", head + "\t\tip daddr @nothing drop\n\t}\n}\n", `missing set "nothing"`},
		{"set of the wrong type", "table ip t {\n\tset s {\n\t\ttype inet_service\n\t}\n" +
			"\tchain c {\n\t\tip daddr @s drop\n\t}\n}\n", "key component 1 is inet_service"},
		{"vmap on a plain set", "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n" +
			"\tchain c {\n\t\tip daddr vmap @s\n\t}\n}\n", "not a verdict map"},
		{"element of the wrong arity", "table ip t {\n\tmap m {\n\t\ttype ipv4_addr . inet_service : verdict\n" +
			"\t\telements = { 10.0.0.1 : drop }\n\t}\n}\n", `want "."`},
		{"IPv6 element in an IPv4 set", "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { fd00::1 }\n\t}\n}\n", "not an ipv4_addr"},
		{"unknown set flag", "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags bogus\n\t}\n}\n", `flag "bogus"`},
		{"unknown data type", "table ip t {\n\tset s {\n\t\ttype ether_addr\n\t}\n}\n", `"ether_addr" is not modelled`},
		{"unknown chain type", "table ip t {\n\tchain c {\n\t\ttype route hook output priority 0; policy accept;\n\t}\n}\n", `type "route"`},
		{"unknown family", "table bridge t {\n}\n", `family "bridge"`},
		{"bad priority", "table ip t {\n\tchain c {\n\t\ttype filter hook input priority sideways; policy accept;\n\t}\n}\n", "priority"},
		{"rule in a missing chain", "add table ip t\nadd rule ip t c accept\n", "missing chain c"},
		{"element in a missing set", "add table ip t\nadd element ip t s { 10.0.0.1 }\n", "missing set s"},
		{"unknown command", "list ruleset\n", `unknown command "list"`},
		{"statement after a comment", head + "\t\taccept comment \"x\" drop\n\t}\n}\n", "after the rule's comment"},
		{"unknown ct state", head + "\t\tct state sleepy accept\n\t}\n}\n", `unknown value "sleepy"`},
		{"mark set from another field", head + "\t\tmeta mark set ip saddr\n\t}\n}\n", "only the mark itself"},
		{"unterminated string", "table ip t {\n\tcomment \"x\n}\n", "unterminated string"},
		{"missing counter", head + "\t\tcounter name \"nothing\" reject\n\t}\n}\n", `missing counter "nothing"`},
		{"counter declared twice", "table ip t {\n\tcounter c {\n\t}\n\tcounter c {\n\t}\n}\n", "declared twice"},
		{"delete a missing counter", "add table ip t\ndelete counter ip t c\n", "no such counter c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse: error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestTraceSemantics checks the walk itself on small hand-written tables:
// jump returns, goto does not, a drop policy, accept ends one base chain only,
// priorities order base chains across tables, and nat chains after a DNAT
// at the same hook are skipped.
func TestTraceSemantics(t *testing.T) {
	const text = `table ip a {
	chain in-late {
		type filter hook input priority 10; policy drop;
		meta mark 0x00000001 accept
		meta mark 0x00000002 jump sub
		meta mark 0x00000003 goto sub
		meta mark 0x00000004 accept
	}
	chain sub {
		meta mark set 0x00000004
		return
	}
	chain nat-first {
		type nat hook prerouting priority -101; policy accept;
		tcp dport 80 dnat to 10.1.0.1:8080
	}
}
table ip b {
	chain in-early {
		type filter hook input priority -10; policy accept;
		iifname "eth*" meta mark set 0x00000001
		iifname "lo" meta mark set 0x00000002
		iifname "tun0" meta mark set 0x00000003
		accept
	}
	chain nat-second {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 80 dnat to 10.2.0.1
		udp dport 53 dnat to 10.2.0.2
	}
}
`
	rs, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	node := Node{LocalAddrs: addrs("10.0.0.1", "10.1.0.1", "10.2.0.1", "10.2.0.2")}
	for _, tc := range []struct {
		name, iface, proto string
		port               int
		want               []string
	}{
		// mark 1: accepted by in-late's first rule.
		{"accept ends one base chain, the next still runs", "eth0", "tcp", 22, []string{"ACCEPT p=1.0000 local"}},
		// mark 2: jump sub sets mark 4 and returns; rule 4 accepts.
		{"jump returns to the next rule", "lo", "tcp", 22, []string{"ACCEPT p=1.0000 local"}},
		// mark 3: goto sub returns to in-late's caller: the policy drops.
		{"goto does not return", "tun0", "tcp", 22, []string{"DROP p=1.0000 local"}},
		{"policy drop", "wlan0", "tcp", 22, []string{"DROP p=1.0000 local"}},
		{"the first nat chain's DNAT wins", "eth0", "tcp", 80, []string{"ACCEPT p=1.0000 endpoint=10.1.0.1:8080 local"}},
		{"a nat chain that does not DNAT lets the next one", "eth0", "udp", 53, []string{"ACCEPT p=1.0000 endpoint=10.2.0.2:53 local"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := Packet{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("10.0.0.1"),
				Proto: tc.proto, DstPort: tc.port, InIface: tc.iface}
			result, err := Trace(rs, node, pkt, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summarize(result)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s\n%s", diff, result)
			}
		})
	}
}

// TestTransaction applies a kube-proxy-like sync transaction (flush,
// delete, destroy, create) on top of a table, in order, as nft -f does.
//
// mutation-checked: a flush chain that keeps the rules fails it (the old
// numgen rule still matches first).
func TestTransaction(t *testing.T) {
	rs, err := Parse(knftablesDump + `flush chain ip kube-proxy service-ABC-ns/web/tcp/http
add rule ip kube-proxy service-ABC-ns/web/tcp/http meta l4proto tcp dnat to 10.244.9.9:80
delete element ip kube-proxy cluster-ips { 10.96.0.11 }
delete element ip kube-proxy no-endpoint-services { 10.96.0.11 . tcp . 80 }
destroy chain ip kube-proxy no-such-chain
create set ip kube-proxy affinity-x { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
delete set ip kube-proxy affinity-x
`)
	if err != nil {
		t.Fatal(err)
	}
	table := rs.Table("ip", "kube-proxy")
	if got := len(table.Sets["cluster-ips"].Elements); got != 1 {
		t.Errorf("cluster-ips has %d elements after the delete, want 1", got)
	}
	if _, ok := table.Sets["affinity-x"]; ok {
		t.Errorf("affinity-x survived its delete")
	}
	node := Node{LocalAddrs: addrs("10.250.0.11")}
	for dst, want := range map[string][]string{
		"10.96.0.10:80": {"ACCEPT p=1.0000 endpoint=10.244.9.9:80"},
		// No longer in no-endpoint-services: not rejected any more.
		"10.96.0.11:80": {"ACCEPT p=1.0000"},
	} {
		d := netip.MustParseAddrPort(dst)
		result, err := Trace(rs, node, fromPod("10.244.1.99")(Packet{Proto: "tcp", Dst: d.Addr(), DstPort: int(d.Port())}), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, summarize(result)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", dst, diff)
		}
	}
	for _, tc := range []struct{ name, text, wantErr string }{
		{"delete a missing chain", "delete chain ip kube-proxy nothing\n", "no such chain"},
		{"delete a missing element", "delete element ip kube-proxy cluster-ips { 10.96.0.99 }\n", "no such element"},
		{"create an existing set", "create set ip kube-proxy cluster-ips { type ipv4_addr ; }\n", "it exists"},
		{"delete a chain still jumped to", "flush chain ip kube-proxy nat-prerouting\ndelete chain ip kube-proxy masquerading\n", `missing chain "masquerading"`},
		{"delete rule by handle", "delete rule ip kube-proxy services handle 4\n", "not modelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(knftablesDump + tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
