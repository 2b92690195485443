package node

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Keywords that --nodeport-addresses accepts besides CIDRs, as in kube-proxy v1.37.
const (
	// NodePortAddressesPrimary is the node's primary address of each family.
	NodePortAddressesPrimary = "primary"
	// NodePortAddressesLocalhost is 127.0.0.0/8 and ::1/128.
	NodePortAddressesLocalhost = "localhost"
	// NodePortAddressesAll is 0.0.0.0/0 and ::/0: every local address.
	NodePortAddressesAll = "all"
)

// ValidateNodePortAddresses checks --nodeport-addresses as kube-proxy's validation
// does: each entry is a CIDR or one of the keywords, and no keyword appears twice.
// path names the setting in errors: the flag, or the configuration file's field.
func ValidateNodePortAddresses(path string, addrs []string) error {
	var errs []error
	seen := map[string]bool{}
	for i, a := range addrs {
		switch a {
		case NodePortAddressesPrimary, NodePortAddressesLocalhost, NodePortAddressesAll:
			if seen[a] {
				errs = append(errs, fmt.Errorf("%s[%d]: duplicate value %q", path, i, a))
			}
			seen[a] = true
			continue
		}
		if _, err := netip.ParsePrefix(a); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: invalid value %q: must be a valid CIDR or one of the keywords 'primary', 'localhost', 'all'", path, i, a))
		}
	}
	return errors.Join(errs...)
}

// nodePortCIDRs expands the keywords of --nodeport-addresses into CIDRs, as kube-proxy
// does at start: "primary" is the node's first address of each family (skipped if it
// is a loopback address), "localhost" both loopback ranges, "all" both zero ranges.
// Entries that are neither a keyword nor a CIDR are dropped (Validate refuses them).
func nodePortCIDRs(addrs []string, facts Facts) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		switch a {
		case NodePortAddressesPrimary:
			for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
				if ips := facts.IPsOf(family); len(ips) > 0 && !ips[0].IsLoopback() {
					out = append(out, netip.PrefixFrom(ips[0], ips[0].BitLen()))
				}
			}
		case NodePortAddressesLocalhost:
			out = append(out, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		case NodePortAddressesAll:
			out = append(out, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		default:
			if p, err := netip.ParsePrefix(a); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out
}

// nodePortsOf fills in the node-port fields of a FamilyConfig from the expanded
// CIDRs, following kube-proxy's NodePortAddresses: only the CIDRs of the config's
// family count; with none, or with a zero CIDR, node ports answer on every local
// address. The addresses are the node's own plus the loopback address when a CIDR
// holds it (kube-proxy lists the host's interface addresses, where lo has it).
func nodePortsOf(c *FamilyConfig, cidrs []netip.Prefix) {
	var mine []netip.Prefix
	for _, p := range cidrs {
		if endpoints.FamilyOf(p.Addr()) == c.Family {
			mine = append(mine, p)
		}
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	if c.Family == v1.IPv6Protocol {
		loopback = netip.IPv6Loopback()
	}
	if len(mine) == 0 || slices.ContainsFunc(mine, func(p netip.Prefix) bool { return p.Bits() == 0 }) {
		c.RestrictNodePorts = false
		c.NodePortIPs = nil
		c.NodePortsOnLoopback = c.Family == v1.IPv4Protocol
		return
	}
	c.RestrictNodePorts = true
	candidates := append(slices.Clone(c.NodeIPs), loopback)
	for _, ip := range candidates {
		if slices.ContainsFunc(mine, func(p netip.Prefix) bool { return p.Contains(ip) }) && !slices.Contains(c.NodePortIPs, ip) {
			c.NodePortIPs = append(c.NodePortIPs, ip)
		}
	}
	// kube-proxy's ContainsIPv4Loopback: a CIDR that is loopback or holds 127.0.0.0.
	c.NodePortsOnLoopback = c.Family == v1.IPv4Protocol && slices.ContainsFunc(mine, func(p netip.Prefix) bool {
		return p.Addr().IsLoopback() || p.Contains(netip.MustParseAddr("127.0.0.0"))
	})
}

// NodePortsIncludeIPv4Loopback reports whether --nodeport-addresses lets IPv4 node
// ports answer on 127.0.0.0/8 (kube-proxy's ContainsIPv4Loopback, with keywords
// expanded): only then do localhost node ports, route_localnet and the martian drop
// rule apply. It needs no node facts: "primary" stands for a routable IPv4 address,
// which never holds 127.0.0.0 (a node whose only IPv4 address is loopback is not
// supported).
func NodePortsIncludeIPv4Loopback(addrs []string) bool {
	c := FamilyConfig{Family: v1.IPv4Protocol}
	routable := Facts{IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	nodePortsOf(&c, nodePortCIDRs(addrs, routable))
	return c.NodePortsOnLoopback
}
