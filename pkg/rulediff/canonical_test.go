package rulediff

import (
	"testing"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// Each case is a rule as Switchyard renders it and the same rule as iptables-save
// (1.8, nft and legacy alike) printed it after a restore in a network namespace;
// test/restore's TestCanonicalRulesMatchTheKernel checks every rendered rule the same
// way against a live kernel. mutation-checked: keeping --or-mark fails "mark or";
// printing the recent match as written fails both recent cases; not rounding the
// probability to the kernel's 31 bits fails "statistic rounded"; leaving -p out of
// the basic matches fails TestCompareFindsDifferences/changed_endpoint.
func TestCanonicalRuleMatchesIPTablesSave(t *testing.T) {
	for _, tc := range []struct {
		name             string
		family           ruleset.Family
		rendered, kernel string
	}{{
		name:     "service dispatch",
		rendered: `-m comment --comment "kube-system/dns:dns cluster IP" -m udp -p udp -d 10.96.0.10 --dport 53 -j KUBE-SVC-2KKYJRIGYGQNRODB`,
		kernel:   `-d 10.96.0.10/32 -p udp -m comment --comment "kube-system/dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-2KKYJRIGYGQNRODB`,
	}, {
		name:     "bare comment and source",
		rendered: `-m comment --comment shop/web:http -s 10.244.1.5 -j KUBE-MARK-MASQ`,
		kernel:   `-s 10.244.1.5/32 -m comment --comment "shop/web:http" -j KUBE-MARK-MASQ`,
	}, {
		name:     "negated source",
		rendered: `-m comment --comment "kube-system/dns:dns cluster IP" -m udp -p udp -d 10.96.0.10 --dport 53 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
		kernel:   `! -s 10.244.0.0/16 -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/dns:dns cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ`,
	}, {
		name:     "statistic",
		rendered: `-m comment --comment "kube-system/dns:dns -> 10.244.1.53:53" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-FOVVATSJWM3ZDQHB`,
		kernel:   `-m comment --comment "kube-system/dns:dns -> 10.244.1.53:53" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-FOVVATSJWM3ZDQHB`,
	}, {
		name:     "statistic rounded",
		rendered: `-m statistic --mode random --probability 0.3333333333 -j RETURN`,
		kernel:   `-m statistic --mode random --probability 0.33333333349 -j RETURN`,
	}, {
		name:     "statistic rounded down",
		rendered: `-m statistic --mode random --probability 0.1428571429 -j RETURN`,
		kernel:   `-m statistic --mode random --probability 0.14285714272 -j RETURN`,
	}, {
		name:     "recent check",
		rendered: `-m comment --comment "shop/api:https -> 10.244.1.20:8443" -m recent --name KUBE-SEP-3HQRYXRYX4FAAKZG --rcheck --seconds 600 --reap -j KUBE-SEP-3HQRYXRYX4FAAKZG`,
		kernel:   `-m comment --comment "shop/api:https -> 10.244.1.20:8443" -m recent --rcheck --seconds 600 --reap --name KUBE-SEP-3HQRYXRYX4FAAKZG --mask 255.255.255.255 --rsource -j KUBE-SEP-3HQRYXRYX4FAAKZG`,
	}, {
		name:     "recent set and DNAT",
		rendered: `-m comment --comment shop/api:https -m recent --name KUBE-SEP-3HQRYXRYX4FAAKZG --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.20:8443`,
		kernel:   `-p tcp -m comment --comment "shop/api:https" -m recent --set --name KUBE-SEP-3HQRYXRYX4FAAKZG --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.20:8443`,
	}, {
		name:     "mark or",
		rendered: `-j MARK --or-mark 0x4000`,
		kernel:   `-j MARK --set-xmark 0x4000/0x4000`,
	}, {
		name:     "mark xor",
		rendered: `-j MARK --xor-mark 0x4000`,
		kernel:   `-j MARK --set-xmark 0x4000/0x0`,
	}, {
		name:     "reject default",
		rendered: `-m comment --comment "shop/legacy:http has no endpoints" -m tcp -p tcp -d 10.96.50.50 --dport 80 -j REJECT`,
		kernel:   `-d 10.96.50.50/32 -p tcp -m comment --comment "shop/legacy:http has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable`,
	}, {
		name:     "node-ports jump",
		rendered: `-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS`,
		kernel:   `! -d 127.0.0.0/8 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
	}, {
		name:     "conntrack states",
		rendered: `-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
		kernel:   `! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
	}, {
		name:     "nfacct",
		rendered: `-m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP`,
		kernel:   `-m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP`,
	}, {
		name:     "IPv6 reject and address",
		family:   ruleset.IPv6,
		rendered: `-m comment --comment "ns/svc:p has no endpoints" -m tcp -p tcp -d fd00:30::10 --dport 80 -j REJECT`,
		kernel:   `-d fd00:30::10/128 -p tcp -m comment --comment "ns/svc:p has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable`,
	}, {
		name:     "IPv6 recent mask",
		family:   ruleset.IPv6,
		rendered: `-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap -j KUBE-SEP-X`,
		kernel:   `-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j KUBE-SEP-X`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			fromRender, err := CanonicalRule(tc.rendered, tc.family)
			if err != nil {
				t.Fatal(err)
			}
			fromKernel, err := CanonicalRule(tc.kernel, tc.family)
			if err != nil {
				t.Fatal(err)
			}
			if fromRender != fromKernel {
				t.Errorf("canonical forms differ:\nrendered %s\nkernel   %s", fromRender, fromKernel)
			}
			again, err := CanonicalRule(fromKernel, tc.family)
			if err != nil || again != fromKernel {
				t.Errorf("not idempotent: %q -> %q (%v)", fromKernel, again, err)
			}
		})
	}
}

// FuzzCanonicalRule checks that CanonicalRule never panics and is idempotent: its
// output, read again, comes back unchanged (State compares canonical text from both
// sides, so a second pass must not move anything).
func FuzzCanonicalRule(f *testing.F) {
	for _, seed := range []string{
		`-m comment --comment "kube-system/dns:dns cluster IP" -m udp -p udp -d 10.96.0.10 --dport 53 -j KUBE-SVC-2KKYJRIGYGQNRODB`,
		`-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap -j KUBE-SEP-X`,
		`-m statistic --mode random --probability 0.3333333333 -j RETURN`,
		`-j MARK --or-mark 0x4000`,
		`! -s 10.0.0.0/8 -m conntrack ! --ctstate DNAT,RELATED -j DROP`,
		`-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT`,
	} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, spec string, ipv6 bool) {
		family := ruleset.IPv4
		if ipv6 {
			family = ruleset.IPv6
		}
		once, err := CanonicalRule(spec, family)
		if err != nil {
			return
		}
		twice, err := CanonicalRule(once, family)
		if err != nil {
			t.Fatalf("the canonical form %q of %q does not read back: %v", once, spec, err)
		}
		if twice != once {
			t.Fatalf("not idempotent for %q:\nonce  %q\ntwice %q", spec, once, twice)
		}
	})
}
