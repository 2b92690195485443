package nftables

import (
	"slices"
	"strings"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// baseChain is a chain hooked into netfilter.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}

// baseChains are kube-proxy's: the source-range firewall before DNAT (priority
// dstnat-10), the no-endpoint and cluster-IP checks at filter priority (reject is not
// allowed in prerouting before kernel 5.9), DNAT at dstnat, masquerading at srcnat.
var baseChains = []baseChain{
	{chainFilterPreroutingPreDNAT, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority + "-10"},
	{chainFilterOutputPreDNAT, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10"},
	{chainFilterInput, knftables.FilterType, knftables.InputHook, knftables.FilterPriority},
	{chainFilterForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority},
	{chainFilterOutput, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority},
	{chainNATPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority},
	{chainNATOutput, knftables.NATType, knftables.OutputHook, knftables.DNATPriority},
	{chainNATPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority},
}

// jumps are the rules from the base chains to the top-level regular chains, in
// kube-proxy's order.
var jumps = []struct{ to, from, match string }{
	{chainNodePortEPCheck, chainFilterInput, "ct state new"},
	{chainServiceEPCheck, chainFilterInput, "ct state new"},
	{chainServiceEPCheck, chainFilterForward, "ct state new"},
	{chainServiceEPCheck, chainFilterOutput, "ct state new"},
	{chainFirewallCheck, chainFilterPreroutingPreDNAT, "ct state new"},
	{chainFirewallCheck, chainFilterOutputPreDNAT, "ct state new"},
	{ChainServices, chainNATOutput, ""},
	{ChainServices, chainNATPrerouting, ""},
	{chainMasquerading, chainNATPostrouting, ""},
	{chainClusterIPsCheck, chainFilterForward, "ct state new"},
	{chainClusterIPsCheck, chainFilterOutput, "ct state new"},
}

// containers are the shared sets and maps whose elements the mirror holds, and the
// periodic check compares; allContainers adds the localhost reject map, which exists
// only with kube-proxy's alpha gate (Config.containers).
var (
	containers    = []string{setClusterIPs, mapServiceIPs, mapFirewallIPs, mapNoEndpointServices, mapNoEndpointNodePorts, mapServiceNodePorts, setHairpinConnections}
	allContainers = append(slices.Clone(containers), mapLocalhostNodePortRej)
)

// writeSetup adds the table and everything in it that does not depend on services:
// base chains, jumps, the fixed chains and their rules, and the shared sets and maps.
// recreateBaseChains deletes the base chains first (kube-proxy does it once per start),
// so that a base chain another version left with other properties is replaced instead
// of failing the transaction.
func writeSetup(tx *knftables.Transaction, cfg *Config, recreateBaseChains bool) {
	writeSetupDeleting(tx, cfg, recreateBaseChains, nil)
}

// writeSetupDeleting is writeSetup that also deletes staleRejects, keys of
// localhost-nodeport-reject-ports elements, before the reject chains they go to
// (staleLocalhostRejects).
func writeSetupDeleting(tx *knftables.Transaction, cfg *Config, recreateBaseChains bool, staleRejects []string) {
	ipX, addr := cfg.ipX(), cfg.addrType()
	tx.Add(&knftables.Table{Comment: ptr.To("rules for kube-proxy")})
	if recreateBaseChains {
		for _, bc := range baseChains {
			tx.Add(&knftables.Chain{Name: bc.name})
			tx.Delete(&knftables.Chain{Name: bc.name})
		}
	}
	for _, bc := range baseChains {
		c := &knftables.Chain{Name: bc.name, Type: ptr.To(bc.typ), Hook: ptr.To(bc.hook), Priority: ptr.To(bc.priority)}
		tx.Add(c)
		tx.Flush(c)
	}
	created := map[string]bool{}
	ensure := func(name string) {
		if !created[name] {
			created[name] = true
			tx.Add(&knftables.Chain{Name: name})
			tx.Flush(&knftables.Chain{Name: name})
		}
	}
	for _, j := range jumps {
		ensure(j.to)
		tx.Add(&knftables.Rule{Chain: j.from, Rule: knftables.Concat(j.match, "jump", j.to)})
	}
	for _, name := range []string{ChainServices, chainClusterIPsCheck, chainMasquerading} {
		ensure(name)
	}

	tx.Add(&knftables.Set{Name: setHairpinConnections, Type: setType(addr, setHairpinConnections), Comment: ptr.To("service hairpin connections")})
	tx.Add(&knftables.Rule{Chain: chainMasquerading, Rule: "mark and " + cfg.mark() + " != 0 mark set mark xor " + cfg.mark() + " masquerade fully-random"})
	tx.Add(&knftables.Rule{Chain: chainMasquerading, Rule: "ct status dnat " + ipX + " saddr . " + ipX + " daddr . meta l4proto . th dport @" + setHairpinConnections + " masquerade fully-random"})

	tx.Add(&knftables.Set{Name: setClusterIPs, Type: setType(addr, setClusterIPs), Comment: ptr.To("Active ClusterIPs")})
	tx.Add(&knftables.Rule{Chain: chainClusterIPsCheck, Rule: ipX + " daddr @" + setClusterIPs + " reject", Comment: ptr.To("Reject traffic to invalid ports of ClusterIPs")})
	if len(cfg.ServiceCIDRs) > 0 {
		cidrs := make([]string, len(cfg.ServiceCIDRs))
		for i, p := range cfg.ServiceCIDRs {
			cidrs[i] = p.String()
		}
		tx.Add(&knftables.Rule{Chain: chainClusterIPsCheck, Rule: ipX + " daddr { " + strings.Join(cidrs, ",") + " } drop", Comment: ptr.To("Drop traffic to unallocated ClusterIPs")})
	}

	writeNodePortIPs(tx, cfg)
	writeNoEndpoints(tx, cfg, ensure, staleRejects)
	tx.Add(&knftables.Map{Name: mapFirewallIPs, Type: vmapType(addr, mapFirewallIPs), Comment: ptr.To("destinations that are subject to LoadBalancerSourceRanges")})
	ensure(chainFirewallCheck)
	tx.Add(&knftables.Rule{Chain: chainFirewallCheck, Rule: ipX + " daddr . meta l4proto . th dport vmap @" + mapFirewallIPs})
	writeDispatch(tx, cfg)
}

// writeNodePortIPs adds nodeport-ips, filled with the --nodeport-addresses addresses
// (never loopback: nftables mode does not serve node ports on localhost), or deletes it
// when node ports answer on every local address. Add-then-delete makes the delete
// succeed whether or not the set exists.
func writeNodePortIPs(tx *knftables.Transaction, cfg *Config) {
	tx.Add(&knftables.Set{Name: setNodePortIPs, Type: cfg.addrType(), Comment: ptr.To("IPs that accept NodePort traffic")})
	if !cfg.RestrictNodePorts {
		tx.Delete(&knftables.Set{Name: setNodePortIPs})
		return
	}
	tx.Flush(&knftables.Set{Name: setNodePortIPs})
	for _, ip := range cfg.NodePortIPs {
		if !ip.IsLoopback() {
			tx.Add(&knftables.Element{Set: setNodePortIPs, Key: []string{ip.String()}})
		}
	}
}

// nodePortMatch is the destination match of node-port traffic: any local address
// but loopback, or the nodeport-ips set.
func nodePortMatch(cfg *Config, withFib bool) string {
	if cfg.RestrictNodePorts {
		return cfg.ipX() + " daddr @" + setNodePortIPs
	}
	notLocalhost := "ip daddr != 127.0.0.0/8"
	if cfg.ipX() == "ip6" {
		notLocalhost = "ip6 daddr != ::1"
	}
	if withFib {
		return "fib daddr type local " + notLocalhost
	}
	return notLocalhost
}

// writeNoEndpoints adds the maps and chains that drop or reject traffic to services
// without (local) endpoints, and the localhost node-port reject objects of kube-proxy's
// alpha gate (localhost.go).
func writeNoEndpoints(tx *knftables.Transaction, cfg *Config, ensure func(string), staleRejects []string) {
	ipX, addr := cfg.ipX(), cfg.addrType()
	tx.Add(&knftables.Map{Name: mapNoEndpointServices, Type: vmapType(addr, mapNoEndpointServices), Comment: ptr.To("vmap to drop or reject packets to services with no endpoints")})
	tx.Add(&knftables.Map{Name: mapNoEndpointNodePorts, Type: vmapType(addr, mapNoEndpointNodePorts), Comment: ptr.To("vmap to drop or reject packets to service nodeports with no endpoints")})
	tx.Add(&knftables.Chain{Name: chainReject, Comment: ptr.To("helper for @no-endpoint-services / @no-endpoint-nodeports")})
	tx.Flush(&knftables.Chain{Name: chainReject})
	tx.Add(&knftables.Rule{Chain: chainReject, Rule: "reject"})
	tx.Add(&knftables.Rule{Chain: chainServiceEPCheck, Rule: ipX + " daddr . meta l4proto . th dport vmap @" + mapNoEndpointServices})
	tx.Add(&knftables.Rule{Chain: chainNodePortEPCheck, Rule: nodePortMatch(cfg, false) + " meta l4proto . th dport vmap @" + mapNoEndpointNodePorts})

	writeLocalhostRejects(tx, cfg, ensure, staleRejects)
}

// writeDispatch adds the service-ips and service-nodeports verdict maps and the
// services chain's rules: masquerading of cluster-IP traffic from outside the pods
// (or all of it with --masquerade-all), then the two map lookups.
func writeDispatch(tx *knftables.Transaction, cfg *Config) {
	ipX, addr := cfg.ipX(), cfg.addrType()
	tx.Add(&knftables.Map{Name: mapServiceIPs, Type: vmapType(addr, mapServiceIPs), Comment: ptr.To("ClusterIP, ExternalIP and LoadBalancer IP traffic")})
	tx.Add(&knftables.Map{Name: mapServiceNodePorts, Type: vmapType(addr, mapServiceNodePorts), Comment: ptr.To("NodePort traffic")})
	switch {
	case cfg.MasqueradeAll:
		tx.Add(&knftables.Rule{Chain: ChainServices, Rule: ipX + " daddr @" + setClusterIPs + " " + cfg.masqueradeRule(), Comment: ptr.To("masquerade all clusterIP traffic")})
	case cfg.ifNotLocal() != "":
		// Off-cluster clients of a cluster IP (a static route to the service range
		// through a node) are masqueraded so that replies come back through it.
		tx.Add(&knftables.Rule{Chain: ChainServices, Rule: ipX + " daddr @" + setClusterIPs + " " + cfg.ifNotLocal() + " " + cfg.masqueradeRule(), Comment: ptr.To("masquerade clusterIP traffic from outside cluster")})
	}
	tx.Add(&knftables.Rule{Chain: ChainServices, Rule: ipX + " daddr . meta l4proto . th dport vmap @" + mapServiceIPs})
	tx.Add(&knftables.Rule{Chain: ChainServices, Rule: nodePortMatch(cfg, true) + " meta l4proto . th dport vmap @" + mapServiceNodePorts})
}
