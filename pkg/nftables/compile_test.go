package nftables

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// TestCompileTransaction pins which partial transactions the netlink writer compiles
// (and into which nf_tables messages) and which it leaves to nft whole. That the
// compiled messages are what nft sends, the kernel says: test/nftkernel's
// TestNetlinkWriterWritesWhatNFTWrites.
//
// mutation-checked: accepting `ip saddr` with a prefix off a byte boundary (nft masks
// those with a bitwise expression the compiler does not write) fails the "prefix off a
// byte boundary" case.
func TestCompileTransaction(t *testing.T) {
	const chain = "service-4BGMBBTA-ns/a/tcp/p80"
	msg := func(m int) string {
		return map[int]string{
			unix.NFT_MSG_NEWCHAIN: "newchain", unix.NFT_MSG_DELCHAIN: "delchain", unix.NFT_MSG_DELRULE: "delrule",
			unix.NFT_MSG_NEWRULE: "newrule", unix.NFT_MSG_NEWSET: "newset", unix.NFT_MSG_NEWSETELEM: "newsetelem",
			unix.NFT_MSG_DELSETELEM: "delsetelem"}[m]
	}
	for _, tc := range []struct {
		name, family, text string
		want               []string // message types, nil: left to nft
	}{
		{"one endpoint added", "ip", `add chain ip kube-proxy ` + chain + `
flush chain ip kube-proxy ` + chain + `
add rule ip kube-proxy ` + chain + ` meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 10.180.0.1 . 8080 , 1 : 10.180.0.2 . 8080 }
add element ip kube-proxy hairpin-connections { 10.180.0.2 . 10.180.0.2 . tcp . 8080 }
`, []string{"newchain", "delrule", "newset", "newsetelem", "newrule", "newsetelem"}},
		{"IPv6, one endpoint", "ip6", `add rule ip6 kube-proxy ` + chain + ` meta l4proto udp dnat to [fd00:10::1]:53
`, []string{"newrule"}},
		{"external chain", "ip", `add rule ip kube-proxy external-X mark set mark or 0x00004000 comment "masquerade"
add rule ip kube-proxy external-X ip saddr 10.0.0.0/8 goto ` + chain + ` comment "short-circuit pod traffic"
add rule ip kube-proxy external-X fib saddr type local goto ` + chain + `
add rule ip kube-proxy external-X goto local-X
`, []string{"newrule", "newrule", "newrule", "newrule"}},
		{"elements and a stale chain", "ip", `add element ip kube-proxy no-endpoint-services { 172.30.0.3 . tcp . 80 comment "ns/none:p80" : goto reject-chain }
delete element ip kube-proxy service-ips { 172.30.0.1 . tcp . 80 }
add element ip kube-proxy service-nodeports { tcp . 30006 : goto external-X }
add element ip kube-proxy cluster-ips { 172.30.0.9 }
delete chain ip kube-proxy ` + chain + `
`, []string{"newsetelem", "delsetelem", "newsetelem", "newsetelem", "delchain"}},
		{"prefix off a byte boundary", "ip", `add rule ip kube-proxy external-X ip saddr 10.0.0.0/12 goto ` + chain + `
`, nil},
		{"affinity", "ip", `add rule ip kube-proxy ` + chain + ` ip saddr @affinity-X goto endpoint-X
`, nil},
		{"firewall", "ip", `add rule ip kube-proxy firewall-X ip saddr != { 198.51.100.0/24 } drop
`, nil},
		{"a set", "ip", `add set ip kube-proxy affinity-X { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
`, nil},
		{"another family's table", "ip", `add rule ip6 kube-proxy ` + chain + ` goto x
`, nil},
		{"an unknown map", "ip", `add element ip kube-proxy other-map { 1 : drop }
`, nil},
		{"a full sync", "ip", `add table ip kube-proxy { comment "rules for kube-proxy" ; }
`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			family := v1.IPv4Protocol
			if tc.family == "ip6" {
				family = v1.IPv6Protocol
			}
			msgs, ok := compileTransaction(tc.text, family)
			var got []string
			if ok {
				for _, m := range msgs {
					got = append(got, msg(int(m.Header.Type)&0xff))
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}
