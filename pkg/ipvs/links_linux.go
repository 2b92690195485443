//go:build linux

package ipvs

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkLinks is Links over github.com/vishvananda/netlink, in the current network
// namespace.
type NetlinkLinks struct{}

var _ Links = NetlinkLinks{}

// NewLinks returns the netlink implementation of Links.
func NewLinks() NetlinkLinks { return NetlinkLinks{} }

func linkByName(name string) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil, fmt.Errorf("link %s: %w", name, ErrNoLink)
		}
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return link, nil
}

// EnsureDummy implements Links. The link stays down, as kube-proxy leaves kube-ipvs0:
// the kernel still adds local routes for its addresses, which is all IPVS needs.
func (NetlinkLinks) EnsureDummy(name string) error {
	if link, err := linkByName(name); err == nil {
		if link.Type() != "dummy" {
			return fmt.Errorf("link %s exists but is a %s, not a dummy", name, link.Type())
		}
		return nil
	} else if !errors.Is(err, ErrNoLink) {
		return err
	}
	if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating dummy link %s: %w", name, err)
	}
	return nil
}

// DeleteLink implements Links.
func (NetlinkLinks) DeleteLink(name string) error {
	link, err := linkByName(name)
	if errors.Is(err, ErrNoLink) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("deleting link %s: %w", name, err)
	}
	return nil
}

// Addresses implements Links.
func (NetlinkLinks) Addresses(name string) ([]netip.Addr, error) {
	link, err := linkByName(name)
	if err != nil {
		return nil, err
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			if a.IP.To4() != nil {
				ip = ip.Unmap()
			}
			if !ip.IsLinkLocalUnicast() {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

func hostNet(ip netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(ip.AsSlice()), Mask: net.CIDRMask(ip.BitLen(), ip.BitLen())}}
}

// AddAddress implements Links.
func (NetlinkLinks) AddAddress(name string, ip netip.Addr) error {
	link, err := linkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, hostNet(ip)); err != nil {
		return fmt.Errorf("adding %s to %s: %w", ip, name, err)
	}
	return nil
}

// DeleteAddress implements Links.
func (NetlinkLinks) DeleteAddress(name string, ip netip.Addr) error {
	link, err := linkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(link, hostNet(ip)); err != nil {
		return fmt.Errorf("removing %s from %s: %w", ip, name, err)
	}
	return nil
}
