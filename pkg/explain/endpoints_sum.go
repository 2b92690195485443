package explain

import (
	"net/netip"
	"sort"
)

// delivery is one traced outcome that reached an endpoint, whichever mode's tracer
// found it (iptables' tracer, nftables' nftmodel).
type delivery struct {
	dst               netip.AddrPort
	local, masquerade bool
	probability       float64
}

// sumEndpoints sums the chances of the deliveries by endpoint, naming each endpoint's
// pod and node from owners, sorted by address.
func sumEndpoints(ds []delivery, owners map[netip.Addr]Owner, nodeName string) []Endpoint {
	byAddr := map[netip.AddrPort]*Endpoint{}
	for _, d := range ds {
		ep := byAddr[d.dst]
		if ep == nil {
			owner := owners[d.dst.Addr()]
			ep = &Endpoint{Address: d.dst, Pod: owner.Pod, Node: owner.Node}
			ep.Local = d.local || (owner.Node != "" && owner.Node == nodeName)
			byAddr[d.dst] = ep
		}
		ep.Probability += d.probability
		ep.Masquerade = ep.Masquerade || d.masquerade
	}
	out := make([]Endpoint, 0, len(byAddr))
	for _, ep := range byAddr {
		out = append(out, *ep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Compare(out[j].Address) < 0 })
	return out
}
