package explain

import (
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// IPVSInputFromRender builds the explain input of one family from what IPVS mode
// would program for snap (offline explain): the rendered virtual servers, the
// companion rules with their hooks into the built-in chains, the ipsets, and the node
// addresses plus the VIPs it would bind on kube-ipvs0.
func IPVSInputFromRender(snap *endpoints.Snapshot, cfg *ipvs.Config) (*IPVSInput, error) {
	st := ipvs.Render(snap, cfg)
	rules, err := RulesFromPayload(rulesetFamily(cfg.Family), ipvs.Hooks(), ipvs.RenderRules(cfg))
	if err != nil {
		return nil, fmt.Errorf("the rendered IPVS companion rules do not load: %w", err)
	}
	sets := map[string]*tracer.IPSet{}
	for _, spec := range ipvs.SetSpecs {
		sets[ipvs.SetName(spec.Name, cfg.Family)] = &tracer.IPSet{Type: string(spec.Type), Members: st.Sets[spec.Name]}
	}
	local := localAddrsWith(cfg.NodeIPs, st.Addresses...)
	return &IPVSInput{
		Family:     cfg.Family,
		Servers:    st.Servers,
		Rules:      rules,
		Sets:       sets,
		LocalAddrs: local,
		Snapshot:   snap,
		NodeName:   cfg.Node.Name,
	}, nil
}

// rulesetFamily is the ruleset family of an IP family.
func rulesetFamily(family v1.IPFamily) ruleset.Family {
	if family == v1.IPv6Protocol {
		return ruleset.IPv6
	}
	return ruleset.IPv4
}

// localAddrsWith returns addrs with extra appended, without duplicates.
func localAddrsWith(addrs []netip.Addr, extra ...netip.Addr) []netip.Addr {
	out := slices.Concat(addrs, extra)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}
