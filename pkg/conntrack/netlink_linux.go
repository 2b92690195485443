//go:build linux

package conntrack

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
)

// Netlink is the Interface over the kernel's conntrack netlink API (no conntrack
// binary needed). It acts on the network namespace of the calling thread.
type Netlink struct{}

var _ Interface = Netlink{}

// DeleteFlows implements Interface.
func (Netlink) DeleteFlows(_ context.Context, family v1.IPFamily, match func(Flow) bool) (int, error) {
	inet := netlink.InetFamily(netlink.FAMILY_V4)
	if family == v1.IPv6Protocol {
		inet = netlink.FAMILY_V6
	}
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, inet, filterFunc(match))
	if err != nil {
		return int(n), fmt.Errorf("deleting %s conntrack entries: %w", family, err)
	}
	return int(n), nil
}

// filterFunc adapts a Flow predicate to netlink's filter interface.
type filterFunc func(Flow) bool

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f filterFunc) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	var proto v1.Protocol
	switch flow.Forward.Protocol {
	case 17:
		proto = v1.ProtocolUDP
	case 6:
		proto = v1.ProtocolTCP
	case 132:
		proto = v1.ProtocolSCTP
	default:
		return false
	}
	return f(Flow{
		Protocol: proto,
		OrigDst:  addrPort(flow.Forward.DstIP, flow.Forward.DstPort),
		ReplySrc: addrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort),
	})
}

func addrPort(ip net.IP, port uint16) netip.AddrPort {
	addr, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(addr.Unmap(), port)
}
