package node

import (
	"errors"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/xtables"
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
	// Local tells traffic from this node's pods apart (--detect-local-mode). Traffic
	// to cluster IPs that it does not match is masqueraded. When it detects nothing
	// and MasqueradeAll is off, cluster-IP traffic is never masqueraded (kube-proxy's
	// behaviour with its no-op detector).
	Local LocalDetector
	// MasqueradeAll masquerades all traffic to cluster IPs (--masquerade-all).
	MasqueradeAll bool
	// MasqueradeMark is the fwmark KUBE-MARK-MASQ sets and KUBE-POSTROUTING tests,
	// 1<<--iptables-masquerade-bit; zero means kube-proxy's default bit 14 (xtables.DefaultMasqueradeBit).
	MasqueradeMark uint32
	// RestrictNodePorts limits node ports to NodePortIPs (--nodeport-addresses);
	// otherwise they answer on every local address.
	RestrictNodePorts bool
	// NodePortIPs are this node's addresses inside the --nodeport-addresses CIDRs.
	// With RestrictNodePorts and none, no node port answers.
	NodePortIPs []netip.Addr
	// NodePortsOnLoopback reports whether the node-port addresses include IPv4
	// loopback (kube-proxy's ContainsIPv4Loopback); localhost node ports need it.
	NodePortsOnLoopback bool
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
	if c.Local.CIDR.IsValid() && endpoints.FamilyOf(c.Local.CIDR.Addr()) != c.Family {
		errs = append(errs, fmt.Errorf("%s CIDR %s is not %s", c.Local.Mode, c.Local.CIDR, c.Family))
	}
	return errors.Join(errs...)
}

// DetectsLocal reports whether pod traffic can be told apart.
func (c *FamilyConfig) DetectsLocal() bool { return c.Local.Implemented() }

// Mark returns the masquerade mark as iptables arguments write it ("0x4000").
func (c *FamilyConfig) Mark() string {
	if c.MasqueradeMark == 0 {
		return xtables.MasqueradeMark(xtables.DefaultMasqueradeBit)
	}
	return fmt.Sprintf("%#x", c.MasqueradeMark)
}

// Options are the flags FamilyConfigs reads.
type Options struct {
	// ClusterCIDRs are the pod ranges (--cluster-cidr), at most one per family.
	ClusterCIDRs []netip.Prefix
	// DetectLocalMode is --detect-local-mode; "" means ClusterCIDR.
	DetectLocalMode LocalMode
	// BridgeInterface is --pod-bridge-interface, for mode BridgeInterface.
	BridgeInterface string
	// InterfaceNamePrefix is --pod-interface-name-prefix, for mode InterfaceNamePrefix.
	InterfaceNamePrefix string
	// NodePortAddresses are --nodeport-addresses: CIDRs and the keywords "primary",
	// "localhost" and "all"; empty means all.
	NodePortAddresses []string
	// MasqueradeAll is --masquerade-all.
	MasqueradeAll bool
	// MasqueradeBit is --iptables-masquerade-bit, 0 to 31.
	MasqueradeBit int32
}

// FamilyConfigs builds one FamilyConfig per family in families, from the node's facts
// and the flags. The local-traffic detector of each family follows kube-proxy's
// getLocalDetectors: ClusterCIDR and NodeCIDR use the first CIDR of the family (from
// --cluster-cidr or the Node's spec.podCIDRs) and detect nothing without one; the
// interface modes are the same for both families.
func FamilyConfigs(facts Facts, families []v1.IPFamily, opts Options) []FamilyConfig {
	var configs []FamilyConfig
	cidrs := nodePortCIDRs(opts.NodePortAddresses, facts)
	for _, family := range families {
		c := FamilyConfig{
			Family:         family,
			Node:           facts.Topology(),
			NodeIPs:        facts.IPsOf(family),
			MasqueradeAll:  opts.MasqueradeAll,
			MasqueradeMark: 1 << uint(opts.MasqueradeBit&31),
			Local:          detectorFor(family, facts, opts),
		}
		nodePortsOf(&c, cidrs)
		configs = append(configs, c)
	}
	return configs
}

func detectorFor(family v1.IPFamily, facts Facts, opts Options) LocalDetector {
	firstOf := func(prefixes []netip.Prefix) netip.Prefix {
		for _, p := range prefixes {
			if endpoints.FamilyOf(p.Addr()) == family {
				return p
			}
		}
		return netip.Prefix{}
	}
	switch opts.DetectLocalMode {
	case "", LocalModeClusterCIDR:
		return DetectByCIDR(LocalModeClusterCIDR, firstOf(opts.ClusterCIDRs))
	case LocalModeNodeCIDR:
		return DetectByCIDR(LocalModeNodeCIDR, firstOf(facts.PodCIDRs))
	case LocalModeBridgeInterface:
		return DetectByInterface(LocalModeBridgeInterface, opts.BridgeInterface)
	case LocalModeInterfaceNamePrefix:
		return DetectByInterface(LocalModeInterfaceNamePrefix, opts.InterfaceNamePrefix)
	}
	return LocalDetector{}
}
