package nftables

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// localhostRejectProtocols are the protocols of kube-proxy's localhost node-port reject
// chains and counters, in its order (metrics.LocalhostNodePortRejectableProtocols).
var localhostRejectProtocols = []string{"tcp", "udp", "sctp"}

// LocalhostNodePortRejects returns the protocols whose node ports kube-proxy v1.37.2's
// nftables mode rejects and counts on the loopback address of a family
// (Proxier.localhostNodePortRejectProtocols in pkg/proxy/nftables/proxier.go): none
// with the alpha gate KubeProxyNFTablesLocalhostNodePorts off (its default); with it
// on, all three, or only UDP and SCTP when --nodeport-addresses names a loopback CIDR
// of the family explicitly (127.0.0.0/8, ::1/128, "localhost"), because kube-proxy then
// serves TCP node ports on loopback with a userspace proxy. Switchyard has no such
// proxy: it writes the same table, and TCP to 127.0.0.1:NODEPORT meets whatever
// listens there.
func LocalhostNodePortRejects(gate, explicitLoopback bool) []string {
	switch {
	case !gate:
		return nil
	case explicitLoopback:
		return []string{"udp", "sctp"}
	default:
		return slices.Clone(localhostRejectProtocols)
	}
}

// staleLocalhostRejects returns the kernel's localhost-nodeport-reject-ports elements
// that go to the reject chain of a protocol cfg no longer rejects, in key order, and
// the kernel state without them (the element sync must not delete them again). With
// nothing rejected the whole map is deleted before the chains, and there are none.
func staleLocalhostRejects(cfg *Config, kernel KernelState) ([]string, KernelState) {
	elems := kernel.Elements[mapLocalhostNodePortRej]
	if len(cfg.LocalhostNodePortRejects) == 0 || len(elems) == 0 {
		return nil, kernel
	}
	var stale []string
	kept := make(map[string]string, len(elems))
	for key, value := range elems {
		proto, ok := strings.CutPrefix(value, "goto "+localhostNodePortRejPref)
		if ok && !cfg.rejectsLocalhost(proto) {
			stale = append(stale, key)
		} else {
			kept[key] = value
		}
	}
	if len(stale) == 0 {
		return nil, kernel
	}
	slices.Sort(stale)
	out := kernel
	out.Elements = maps.Clone(kernel.Elements)
	out.Elements[mapLocalhostNodePortRej] = kept
	return stale, out
}

// localhostMatch is the destination match of the loopback addresses, as kube-proxy
// writes it.
func (c *Config) localhostMatch() string {
	if c.ipX() == "ip6" {
		return "ip6 daddr ::1"
	}
	return "ip daddr 127.0.0.0/8"
}

// rejectsLocalhost reports whether node ports of proto (lower case) are rejected on
// loopback.
func (c *Config) rejectsLocalhost(proto string) bool {
	return slices.Contains(c.LocalhostNodePortRejects, proto)
}

// containers returns the shared sets and maps of the Config: the localhost reject map
// only when something is rejected, since the setup deletes it otherwise.
func (c *Config) containers() []string {
	if len(c.LocalhostNodePortRejects) == 0 {
		return containers
	}
	return allContainers
}

// writeLocalhostRejects adds kube-proxy's localhost node-port reject objects: the
// map localhost-nodeport-reject-ports, and for each rejected protocol a named counter,
// a chain that counts and rejects, and the nodeport-endpoints-check rule that looks
// loopback destinations up in the map. Without rejected protocols (the gate off) the
// map is added and deleted. The objects of protocols not rejected are added and
// deleted too, chain before counter (the chain's rule names the counter), so that a
// node coming from a kube-proxy with another configuration ends up with the same
// table and the deletes succeed whether or not the objects exist.
//
// staleRejects (staleLocalhostRejects) are deleted from the map before any chain: the
// kernel refuses to delete a chain a map element still goes to ("Device or resource
// busy"), which kube-proxy v1.37.2 runs into when loopback is added to
// --nodeport-addresses with the gate on, since it deletes the tcp chain before the
// map's leftover tcp elements.
func writeLocalhostRejects(tx *knftables.Transaction, cfg *Config, ensure func(string), staleRejects []string) {
	tx.Add(&knftables.Map{Name: mapLocalhostNodePortRej, Type: vmapType(cfg.addrType(), mapLocalhostNodePortRej), Comment: ptr.To("localhost NodePorts rejected by kube-proxy")})
	for _, key := range staleRejects {
		tx.Delete(knftElement(mapLocalhostNodePortRej, key, "", ""))
	}
	if len(cfg.LocalhostNodePortRejects) > 0 {
		for _, proto := range cfg.LocalhostNodePortRejects {
			counter := localhostNodePortCounter + proto
			tx.Add(&knftables.Counter{Name: counter})
			chain := localhostNodePortRejPref + proto
			ensure(chain)
			tx.Add(&knftables.Rule{Chain: chain, Rule: "counter name " + strconv.Quote(counter) + " reject"})
		}
		tx.Add(&knftables.Rule{Chain: chainNodePortEPCheck, Rule: cfg.localhostMatch() + " meta l4proto . th dport vmap @" + mapLocalhostNodePortRej})
	} else {
		tx.Delete(&knftables.Map{Name: mapLocalhostNodePortRej})
	}
	for _, proto := range localhostRejectProtocols {
		if cfg.rejectsLocalhost(proto) {
			continue
		}
		chain := &knftables.Chain{Name: localhostNodePortRejPref + proto}
		tx.Add(chain)
		tx.Delete(chain)
		counter := &knftables.Counter{Name: localhostNodePortCounter + proto}
		tx.Add(counter)
		tx.Delete(counter)
	}
}
