package explain

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// IPVSKernel is what live IPVS explain reads from the node. Nothing is written.
type IPVSKernel struct {
	IPVS   ipvs.Interface
	Links  ipvs.Links
	IPSets ipvs.IPSets
}

// ReadIPVSInput reads one family's IPVS state from the kernel: the family's virtual
// servers with their real servers and weights, the ipsets, and the VIPs on
// kube-ipvs0, which are local addresses along with nodeAddrs. rules are the family's
// companion rules as read with iptables-save (see IPVSRuleset). snap, when not nil,
// names Services and endpoint nodes.
func ReadIPVSInput(ctx context.Context, k IPVSKernel, family v1.IPFamily, rules *ruleset.Ruleset,
	nodeAddrs []netip.Addr, snap *endpoints.Snapshot, nodeName string) (*IPVSInput, error) {
	virtual, err := k.IPVS.VirtualServers()
	if err != nil {
		return nil, fmt.Errorf("listing IPVS virtual servers: %w", err)
	}
	var servers []ipvs.DesiredServer
	for _, vs := range virtual {
		if endpoints.FamilyOf(vs.Addr) != family {
			continue
		}
		real, err := k.IPVS.RealServers(vs.Key)
		if err != nil {
			return nil, fmt.Errorf("listing the real servers of %s: %w", vs.Key, err)
		}
		ds := ipvs.DesiredServer{VirtualServer: vs}
		for _, rs := range real {
			ds.RealServers = append(ds.RealServers, rs.RealServer)
		}
		slices.SortFunc(ds.RealServers, func(a, b ipvs.RealServer) int { return a.Addr.Compare(b.Addr) })
		servers = append(servers, ds)
	}
	slices.SortFunc(servers, func(a, b ipvs.DesiredServer) int { return a.Key.Compare(b.Key) })

	sets := map[string]*tracer.IPSet{}
	for _, spec := range ipvs.SetSpecs {
		name := ipvs.SetName(spec.Name, family)
		members, err := k.IPSets.Entries(ctx, name)
		if err != nil {
			if errors.Is(err, ipvs.ErrNoSet) {
				return nil, fmt.Errorf("ipset %s does not exist: is this node running kube-proxy or Switchyard in IPVS mode? %w", name, err)
			}
			return nil, fmt.Errorf("reading ipset %s: %w", name, err)
		}
		sets[name] = &tracer.IPSet{Type: string(spec.Type), Members: members}
	}

	vips, err := k.Links.Addresses(ipvs.DummyInterface)
	if err != nil && !errors.Is(err, ipvs.ErrNoLink) {
		return nil, fmt.Errorf("reading the addresses of %s: %w", ipvs.DummyInterface, err)
	}
	var familyVIPs []netip.Addr
	for _, ip := range vips {
		if endpoints.FamilyOf(ip) == family {
			familyVIPs = append(familyVIPs, ip)
		}
	}
	return &IPVSInput{
		Family:     family,
		Servers:    servers,
		Rules:      rules,
		Sets:       sets,
		LocalAddrs: localAddrsWith(nodeAddrs, familyVIPs...),
		Snapshot:   snap,
		NodeName:   nodeName,
	}, nil
}
