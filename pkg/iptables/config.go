package iptables

import (
	"errors"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Config holds the facts about this node that rules depend on, for one IP family. A
// dual-stack node renders twice, with one Config per family.
type Config struct {
	// Family is the IP family rendered: IPv4 for iptables, IPv6 for ip6tables.
	Family v1.IPFamily
	// Node is the node's name and zone, for endpoint selection.
	Node endpoints.NodeTopology
	// NodeIPs are the node's addresses of this family. A load-balancer source range that
	// contains one of them also admits traffic the node sends to the LB IP, as in
	// kube-proxy.
	NodeIPs []netip.Addr
	// ClusterCIDR is the pod range of this family (--cluster-cidr). Traffic from outside
	// it is masqueraded, and traffic from inside it is treated as pod traffic. With no
	// CIDR and no MasqueradeAll, cluster-IP traffic is never masqueraded (kube-proxy's
	// behaviour without a local-traffic detector).
	ClusterCIDR netip.Prefix
	// MasqueradeAll masquerades all traffic to cluster IPs (--masquerade-all).
	MasqueradeAll bool
	// RestrictNodePorts limits node ports to NodePortIPs (--nodeport-addresses);
	// otherwise they answer on every local address.
	RestrictNodePorts bool
	// NodePortIPs are this node's addresses inside the --nodeport-addresses CIDRs,
	// resolved by the caller. With RestrictNodePorts and none, no node port answers.
	NodePortIPs []netip.Addr
	// LocalhostNodePorts lets IPv4 node ports answer on 127.0.0.1. It needs
	// route_localnet (CVE-2020-8558), so unlike kube-proxy it is off by default; when on,
	// the martian-localnet drop rule is written too.
	LocalhostNodePorts bool
}

// Validate reports every problem with the Config at once.
func (c *Config) Validate() error {
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
	if c.LocalhostNodePorts && c.Family == v1.IPv6Protocol {
		errs = append(errs, errors.New("localhost node ports are IPv4 only"))
	}
	return errors.Join(errs...)
}

// detectsLocal reports whether pod traffic can be told apart by source address.
func (c *Config) detectsLocal() bool { return c.ClusterCIDR.IsValid() }
