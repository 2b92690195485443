// Package node holds what the proxy knows about the node it runs on: its name, zone and
// addresses, read from its Node object or given on the command line.
package node

import (
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Facts describes this node.
type Facts struct {
	// Name is the Node's name (--hostname-override or the host name).
	Name string
	// Zone is the topology.kubernetes.io/zone label, or "".
	Zone string
	// IPs are the node's addresses, the primary of each family first.
	IPs []netip.Addr
	// PodCIDRs are the Node's spec.podCIDRs, for --detect-local-mode NodeCIDR.
	PodCIDRs []netip.Prefix
}

// FromNode reads the facts of a Node object: its InternalIP addresses, or its
// ExternalIP addresses when it has no internal ones, as kube-proxy does.
func FromNode(n *v1.Node) (Facts, error) {
	facts := Facts{Name: n.Name, Zone: n.Labels[v1.LabelTopologyZone]}
	for _, kind := range []v1.NodeAddressType{v1.NodeInternalIP, v1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type != kind {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil {
				return facts, fmt.Errorf("node %s: address %q: %w", n.Name, a.Address, err)
			}
			if !slices.Contains(facts.IPs, ip.Unmap()) {
				facts.IPs = append(facts.IPs, ip.Unmap())
			}
		}
		if len(facts.IPs) > 0 {
			break
		}
	}
	if len(facts.IPs) == 0 {
		return facts, fmt.Errorf("node %s has no InternalIP or ExternalIP address yet", n.Name)
	}
	podCIDRs := n.Spec.PodCIDRs
	if len(podCIDRs) == 0 && n.Spec.PodCIDR != "" {
		podCIDRs = []string{n.Spec.PodCIDR}
	}
	for _, s := range podCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return facts, fmt.Errorf("node %s: spec.podCIDRs %q: %w", n.Name, s, err)
		}
		facts.PodCIDRs = append(facts.PodCIDRs, p.Masked())
	}
	return facts, nil
}

// Equal reports whether two Facts would render the same rules: a Node update that
// changes any of them (addresses, zone, pod CIDRs) rebuilds the proxiers.
func (f Facts) Equal(o Facts) bool {
	return f.Name == o.Name && f.Zone == o.Zone && slices.Equal(f.IPs, o.IPs) && slices.Equal(f.PodCIDRs, o.PodCIDRs)
}

// Topology returns the facts endpoint selection needs.
func (f Facts) Topology() endpoints.NodeTopology {
	return endpoints.NodeTopology{Name: f.Name, Zone: f.Zone}
}

// Families returns the IP families the node has addresses in, IPv4 first.
func (f Facts) Families() []v1.IPFamily {
	var out []v1.IPFamily
	for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		if len(f.IPsOf(family)) > 0 {
			out = append(out, family)
		}
	}
	return out
}

// IPsOf returns the node's addresses of one family.
func (f Facts) IPsOf(family v1.IPFamily) []netip.Addr {
	var out []netip.Addr
	for _, ip := range f.IPs {
		if endpoints.FamilyOf(ip) == family {
			out = append(out, ip)
		}
	}
	return out
}
