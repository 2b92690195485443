package node

import (
	"errors"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// FamilyConfig holds what both proxy modes render from for one IP family: the node's
// facts and the flags that shape masquerading and node ports. A dual-stack node has one
// per family.
type FamilyConfig struct {
	// Family is the IP family rendered.
	Family v1.IPFamily
	// Node is the node's name and zone, for endpoint selection.
	Node endpoints.NodeTopology
	// NodeIPs are the node's addresses of this family. A load-balancer source range
	// that contains one of them also admits traffic the node sends to the LB IP, and
	// IPVS node ports listen on each.
	NodeIPs []netip.Addr
	// ClusterCIDR is the pod range of this family (--cluster-cidr). Traffic to cluster
	// IPs from outside it is masqueraded, and traffic from inside it is pod traffic.
	// With no CIDR and no MasqueradeAll, cluster-IP traffic is never masqueraded
	// (kube-proxy's behaviour without a local-traffic detector).
	ClusterCIDR netip.Prefix
	// MasqueradeAll masquerades all traffic to cluster IPs (--masquerade-all).
	MasqueradeAll bool
	// RestrictNodePorts limits node ports to NodePortIPs (--nodeport-addresses);
	// otherwise they answer on every local address.
	RestrictNodePorts bool
	// NodePortIPs are this node's addresses inside the --nodeport-addresses CIDRs.
	// With RestrictNodePorts and none, no node port answers.
	NodePortIPs []netip.Addr
}

// Validate reports every problem with the FamilyConfig at once.
func (c *FamilyConfig) Validate() error {
	var errs []error
	if c.Family != v1.IPv4Protocol && c.Family != v1.IPv6Protocol {
		errs = append(errs, fmt.Errorf("family %q is neither IPv4 nor IPv6", c.Family))
	}
	for _, ip := range c.NodeIPs {
		if endpoints.FamilyOf(ip) != c.Family {
			errs = append(errs, fmt.Errorf("node IP %s is not %s", ip, c.Family))
		}
	}
	for _, ip := range c.NodePortIPs {
		if endpoints.FamilyOf(ip) != c.Family {
			errs = append(errs, fmt.Errorf("node-port address %s is not %s", ip, c.Family))
		}
	}
	if c.ClusterCIDR.IsValid() && endpoints.FamilyOf(c.ClusterCIDR.Addr()) != c.Family {
		errs = append(errs, fmt.Errorf("cluster CIDR %s is not %s", c.ClusterCIDR, c.Family))
	}
	return errors.Join(errs...)
}

// DetectsLocal reports whether pod traffic can be told apart by source address.
func (c *FamilyConfig) DetectsLocal() bool { return c.ClusterCIDR.IsValid() }

// FamilyConfigs builds one FamilyConfig per family in families, from the node's facts
// and the --cluster-cidr, --masquerade-all and --nodeport-addresses flags.
func FamilyConfigs(facts Facts, families []v1.IPFamily, clusterCIDRs, nodePortCIDRs []netip.Prefix, masqueradeAll bool) []FamilyConfig {
	var configs []FamilyConfig
	for _, family := range families {
		c := FamilyConfig{
			Family:            family,
			Node:              facts.Topology(),
			NodeIPs:           facts.IPsOf(family),
			MasqueradeAll:     masqueradeAll,
			RestrictNodePorts: len(nodePortCIDRs) > 0,
		}
		for _, p := range clusterCIDRs {
			if endpoints.FamilyOf(p.Addr()) == family {
				c.ClusterCIDR = p
			}
		}
		for _, p := range nodePortCIDRs {
			for _, ip := range c.NodeIPs {
				if p.Contains(ip) {
					c.NodePortIPs = append(c.NodePortIPs, ip)
				}
			}
		}
		configs = append(configs, c)
	}
	return configs
}
