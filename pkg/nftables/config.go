package nftables

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// Config holds the facts about this node that the rules depend on, for one IP family.
// A dual-stack node renders twice, into the ip and the ip6 table.
type Config struct {
	node.FamilyConfig
	// ServiceCIDRs are the family's service ranges; with any, traffic to an address in
	// them that no Service holds is dropped (kube-proxy's "Drop traffic to unallocated
	// ClusterIPs", which it fills from the ServiceCIDR objects). Empty leaves the rule
	// out.
	ServiceCIDRs []netip.Prefix
	// LocalhostNodePortRejects are the protocols ("tcp", "udp", "sctp") whose node
	// ports are rejected and counted on the loopback address, as kube-proxy does with
	// its alpha gate KubeProxyNFTablesLocalhostNodePorts (LocalhostNodePortRejects
	// computes them). Empty, the gate's default, deletes the reject objects: node
	// ports then do not answer on loopback at all.
	LocalhostNodePortRejects []string
}

// Validate reports every problem with the Config at once.
func (c *Config) Validate() error {
	err := c.FamilyConfig.Validate()
	for _, p := range c.ServiceCIDRs {
		if endpoints.FamilyOf(p.Addr()) != c.Family {
			err = errors.Join(err, fmt.Errorf("service CIDR %s is not %s", p, c.Family))
		}
	}
	for _, p := range c.LocalhostNodePortRejects {
		if !slices.Contains(localhostRejectProtocols, p) {
			err = errors.Join(err, fmt.Errorf("localhost node-port reject protocol %q is not one of %v", p, localhostRejectProtocols))
		}
	}
	return err
}

// NFTFamily returns the nftables family of the Config's IP family: ip or ip6.
func (c *Config) NFTFamily() knftables.Family { return FamilyOf(c.Family) }

// FamilyOf returns the nftables family that holds an IP family's table.
func FamilyOf(family v1.IPFamily) knftables.Family {
	if family == v1.IPv6Protocol {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}

// ipX is the address match keyword of the family: "ip" or "ip6".
func (c *Config) ipX() string {
	if c.Family == v1.IPv6Protocol {
		return "ip6"
	}
	return "ip"
}

// addrType is the nftables type of an address of the family.
func (c *Config) addrType() string { return addrTypeOf(c.Family) }

// addrTypeOf is the nftables type of an address of an IP family.
func addrTypeOf(family v1.IPFamily) string {
	if family == v1.IPv6Protocol {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}

// mark is the masquerade mark as kube-proxy formats it ("%#08x": 0x004000 for bit
// 14); nft lists it in its own canonical form either way.
func (c *Config) mark() string {
	m := c.MasqueradeMark
	if m == 0 {
		m = 1 << 14
	}
	return fmt.Sprintf("%#08x", m)
}

// masqueradeRule marks a packet for masquerading.
func (c *Config) masqueradeRule() string { return "mark set mark or " + c.mark() }

// ifLocal and ifNotLocal are the local-traffic detector's nftables matches, with
// kube-proxy's text: "ip saddr CIDR", "iifname BRIDGE" or "iifname PREFIX*", and
// their negations with "!=". Empty when nothing is detected.
func (c *Config) ifLocal() string    { return c.localMatch("") }
func (c *Config) ifNotLocal() string { return c.localMatch("!= ") }

func (c *Config) localMatch(op string) string {
	d := c.Local
	switch d.Mode {
	case node.LocalModeClusterCIDR, node.LocalModeNodeCIDR:
		if d.CIDR.IsValid() {
			return c.ipX() + " saddr " + op + d.CIDR.String()
		}
	case node.LocalModeBridgeInterface:
		if d.Interface != "" {
			return "iifname " + op + d.Interface
		}
	case node.LocalModeInterfaceNamePrefix:
		if d.Interface != "" {
			return "iifname " + op + d.Interface + "*"
		}
	}
	return ""
}
