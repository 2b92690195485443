package ipvs

import (
	"bytes"
	"fmt"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// Chains of the companion iptables rules, with kube-proxy's IPVS-mode names.
const (
	// ChainServices (nat) masquerades traffic to VIPs that needs it and sends node
	// traffic to ChainNodePort.
	ChainServices = "KUBE-SERVICES"
	// ChainPostrouting (nat) masquerades marked and hairpin traffic.
	ChainPostrouting = string(xtables.ChainKubePostrouting)
	// ChainNodePort (nat and filter) marks node-port traffic for masquerade, and
	// accepts health-check node ports.
	ChainNodePort = "KUBE-NODE-PORT"
	// ChainLoadBalancer (nat) marks load-balancer traffic for masquerade unless the
	// policy is Local.
	ChainLoadBalancer = "KUBE-LOAD-BALANCER"
	// ChainMarkMasq (nat) sets the masquerade mark.
	ChainMarkMasq = string(xtables.ChainKubeMarkMasq)
	// ChainForward (filter) accepts forwarded service traffic.
	ChainForward = string(xtables.ChainKubeForward)
	// ChainProxyFirewall (filter) sends load-balancer traffic with source ranges to
	// ChainSourceRangesFirewall.
	ChainProxyFirewall = "KUBE-PROXY-FIREWALL"
	// ChainSourceRangesFirewall (filter) drops traffic from outside the source ranges.
	ChainSourceRangesFirewall = "KUBE-SOURCE-RANGES-FIREWALL"
	// ChainIPVSFilter (filter) rejects new connections to a VIP on a port that is not
	// a service port (kubernetes#72236).
	ChainIPVSFilter = "KUBE-IPVS-FILTER"
	// ChainIPVSOutFilter (filter) is created for compatibility with kube-proxy's hooks.
	ChainIPVSOutFilter = "KUBE-IPVS-OUT-FILTER"
)

// Hooks returns the jumps from the built-in chains into the companion chains, in the
// order kube-proxy's IPVS mode ensures them.
func Hooks() []xtables.Hook {
	hook := func(table xtables.Table, chain xtables.Chain, target, comment string) xtables.Hook {
		return xtables.Hook{Table: table, Chain: chain, Target: xtables.Chain(target),
			Args: []string{"-m", "comment", "--comment", comment, "-j", target}}
	}
	return []xtables.Hook{
		hook("nat", "OUTPUT", ChainServices, "kubernetes service portals"),
		hook("nat", "PREROUTING", ChainServices, "kubernetes service portals"),
		hook("nat", "POSTROUTING", ChainPostrouting, "kubernetes postrouting rules"),
		hook("filter", "FORWARD", ChainForward, "kubernetes forwarding rules"),
		hook("filter", "INPUT", ChainNodePort, "kubernetes health check rules"),
		hook("filter", "INPUT", ChainProxyFirewall, "kube-proxy firewall rules"),
		hook("filter", "FORWARD", ChainProxyFirewall, "kube-proxy firewall rules"),
		hook("filter", "INPUT", ChainIPVSFilter, "kubernetes ipvs access filter"),
		hook("filter", "OUTPUT", ChainIPVSOutFilter, "kubernetes ipvs access filter"),
	}
}

// RenderRules returns the companion iptables-restore payload (filter and nat) for
// cfg. It depends on the Config only: what varies with services lives in the ipsets,
// so the payload is written at full syncs alone. Every set it names must exist first.
//
// Differences from kube-proxy: every rule is written even when its set is empty (the
// sets always exist, and the rule count stays fixed); the physdev test on external-IP
// traffic is left out (it needs br_netfilter semantics that the addrtype test
// already approximates); and KUBE-IPVS-OUT-FILTER stays empty, since its rules need
// the xt_ipvs match.
func RenderRules(cfg *Config) []byte {
	set := func(name string) string { return SetName(name, cfg.Family) }
	comment := func(name string) string {
		for _, s := range SetSpecs {
			if s.Name == name {
				return `-m comment --comment "` + s.Comment + `"`
			}
		}
		return ""
	}
	// kube-proxy's IPVS mode writes no INVALID drop in KUBE-FORWARD.
	masq := xtables.NewMasqueradeRules(xtables.MasqueradeMark(xtables.DefaultMasqueradeBit), false)
	loopback := "127.0.0.0/8"
	if cfg.Family == v1.IPv6Protocol {
		loopback = "::1/128"
	}

	var nat, filter bytes.Buffer
	rule := func(b *bytes.Buffer, format string, args ...any) {
		fmt.Fprintf(b, format+"\n", args...)
	}
	nat.WriteString("*nat\n")
	for _, c := range []string{ChainServices, ChainPostrouting, ChainNodePort, ChainLoadBalancer, ChainMarkMasq} {
		rule(&nat, ":%s - [0:0]", c)
	}
	// Connections from the node's loopback are left alone early.
	rule(&nat, "-A %s -s %s -j RETURN", ChainServices, loopback)
	// Hairpin: an endpoint that reaches itself through its service is masqueraded.
	rule(&nat, "-A %s %s -m set --match-set %s dst,dst,src -j MASQUERADE", ChainPostrouting, comment(SetLoopBack), set(SetLoopBack))
	rule(&nat, "-A %s %s -m set --match-set %s dst,dst -j %s", ChainServices, comment(SetLoadBalancer), set(SetLoadBalancer), ChainLoadBalancer)
	rule(&nat, "-A %s %s -m set --match-set %s dst,dst -j RETURN", ChainLoadBalancer, comment(SetLoadBalancerLocal), set(SetLoadBalancerLocal))
	for _, np := range []struct{ proto, local, all, flags string }{
		{"tcp", SetNodePortLocalTCP, SetNodePortTCP, "dst"},
		{"udp", SetNodePortLocalUDP, SetNodePortUDP, "dst"},
		{"sctp", SetNodePortLocalSCTP, SetNodePortSCTP, "dst,dst"},
	} {
		// Local policy keeps the client's address; the rest is masqueraded so replies
		// come back through this node.
		rule(&nat, "-A %s -p %s %s -m set --match-set %s %s -j RETURN", ChainNodePort, np.proto, comment(np.local), set(np.local), np.flags)
		rule(&nat, "-A %s -p %s %s -m set --match-set %s %s -j %s", ChainNodePort, np.proto, comment(np.all), set(np.all), np.flags, ChainMarkMasq)
	}
	switch {
	case cfg.MasqueradeAll:
		rule(&nat, "-A %s %s -m set --match-set %s dst,dst -j %s", ChainServices, comment(SetClusterIP), set(SetClusterIP), ChainMarkMasq)
	case cfg.ClusterCIDR.IsValid():
		// Off-cluster clients of a cluster IP must be masqueraded so that replies
		// come back through this node.
		rule(&nat, "-A %s %s -m set --match-set %s dst,dst ! -s %s -j %s", ChainServices, comment(SetClusterIP), set(SetClusterIP), cfg.ClusterCIDR, ChainMarkMasq)
	default:
		// Without a pod CIDR, masquerade the node's own connections that picked a VIP
		// as source address (the VIPs are local addresses on kube-ipvs0).
		rule(&nat, "-A %s %s -m set --match-set %s src,dst -j %s", ChainServices, comment(SetClusterIP), set(SetClusterIP), ChainMarkMasq)
	}
	rule(&nat, "-A %s %s -m set --match-set %s dst,dst -j %s", ChainServices, comment(SetExternalIP), set(SetExternalIP), ChainMarkMasq)
	for _, s := range []string{SetExternalIP, SetExternalIPLocal} {
		// Traffic from off the node, or to an external IP that is local (cloud LBs
		// that add their IP to the node), stops traversing nat here.
		rule(&nat, "-A %s %s -m set --match-set %s dst,dst -m addrtype ! --src-type LOCAL -j ACCEPT", ChainServices, comment(s), set(s))
		rule(&nat, "-A %s %s -m set --match-set %s dst,dst -m addrtype --dst-type LOCAL -j ACCEPT", ChainServices, comment(s), set(s))
	}
	rule(&nat, "-A %s -m addrtype --dst-type LOCAL -j %s", ChainServices, ChainNodePort)
	rule(&nat, "-A %s -j %s", ChainLoadBalancer, ChainMarkMasq)
	rule(&nat, "-A %s -m set --match-set %s dst,dst -j ACCEPT", ChainServices, set(SetClusterIP))
	rule(&nat, "-A %s -m set --match-set %s dst,dst -j ACCEPT", ChainServices, set(SetLoadBalancer))
	for _, r := range masq.NAT {
		rule(&nat, "-A %s %s", r.Chain, r.Spec)
	}
	nat.WriteString("COMMIT\n")

	filter.WriteString("*filter\n")
	for _, c := range []string{ChainForward, ChainNodePort, ChainProxyFirewall, ChainSourceRangesFirewall, ChainIPVSFilter, ChainIPVSOutFilter} {
		rule(&filter, ":%s - [0:0]", c)
	}
	rule(&filter, "-A %s %s -m set --match-set %s dst,dst -j %s", ChainProxyFirewall, comment(SetLoadBalancerFW), set(SetLoadBalancerFW), ChainSourceRangesFirewall)
	rule(&filter, "-A %s %s -m set --match-set %s dst,dst,src -j RETURN", ChainSourceRangesFirewall, comment(SetLoadBalancerSourceCIDR), set(SetLoadBalancerSourceCIDR))
	rule(&filter, "-A %s %s -m set --match-set %s dst,dst,src -j RETURN", ChainSourceRangesFirewall, comment(SetLoadBalancerSourceIP), set(SetLoadBalancerSourceIP))
	rule(&filter, "-A %s -j DROP", ChainSourceRangesFirewall)
	for _, r := range masq.Filter {
		rule(&filter, "-A %s %s", r.Chain, r.Spec)
	}
	rule(&filter, "-A %s %s -m set --match-set %s dst -j ACCEPT", ChainNodePort, comment(SetHealthCheckNodePort), set(SetHealthCheckNodePort))
	// kubernetes#72236: the VIPs are local addresses, so without this any host service
	// listening on 0.0.0.0 would answer on every cluster IP.
	for _, s := range []string{SetLoadBalancer, SetClusterIP, SetExternalIP, SetExternalIPLocal} {
		rule(&filter, "-A %s -m set --match-set %s dst,dst -j RETURN", ChainIPVSFilter, set(s))
	}
	rule(&filter, "-A %s -m set --match-set %s dst -j RETURN", ChainIPVSFilter, set(SetHealthCheckNodePort))
	rule(&filter, "-A %s -m conntrack --ctstate NEW -m set --match-set %s dst -j REJECT", ChainIPVSFilter, set(SetIPVSIPs))
	filter.WriteString("COMMIT\n")

	var out bytes.Buffer
	out.Write(filter.Bytes())
	out.Write(nat.Bytes())
	return out.Bytes()
}

// Sysctls returns the sysctls IPVS mode needs, with their values, in the order they
// are set: conntrack so that the companion rules see IPVS connections; expire_nodest_conn
// and expire_quiescent_template so that connections to deleted or weight-0 real servers
// do not linger (kubernetes#70747, #81775); ip_forward; and with StrictARP, arp_ignore=1
// and arp_announce=2 so the node does not answer ARP for the VIPs on kube-ipvs0.
// conn_reuse_mode is left at the kernel's default, which is right on kernels ≥ 5.9.
func Sysctls(cfg *Config) [][2]string {
	out := [][2]string{
		{"net/ipv4/vs/conntrack", "1"},
		{"net/ipv4/vs/expire_nodest_conn", "1"},
		{"net/ipv4/vs/expire_quiescent_template", "1"},
		{"net/ipv4/ip_forward", "1"},
	}
	if cfg.Family == v1.IPv6Protocol {
		out = append(out, [2]string{"net/ipv6/conf/all/forwarding", "1"})
	}
	if cfg.StrictARP {
		out = append(out, [2]string{"net/ipv4/conf/all/arp_ignore", "1"}, [2]string{"net/ipv4/conf/all/arp_announce", "2"})
	}
	return out
}

// RuleCounts counts iptables rules per table.
type RuleCounts struct {
	FilterRules, NATRules int
}

// countRules counts the rules a restore payload writes in the filter and nat tables
// (kube-proxy's sync_proxy_rules_iptables_last{table}).
func countRules(payload []byte) RuleCounts {
	var st RuleCounts
	table := ""
	for line := range bytes.Lines(payload) {
		switch {
		case bytes.HasPrefix(line, []byte("*")):
			table = string(bytes.TrimSpace(line[1:]))
		case bytes.HasPrefix(line, []byte("-A ")), bytes.HasPrefix(line, []byte("-I ")), bytes.HasPrefix(line, []byte("-D ")):
			switch table {
			case "filter":
				st.FilterRules++
			case "nat":
				st.NATRules++
			}
		}
	}
	return st
}
