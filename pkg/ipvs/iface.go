package ipvs

import (
	"context"
	"errors"
	"net/netip"
)

// Interface is the kernel's IPVS table, as the Proxier uses it. The Linux
// implementation is NewIPVS; pkg/ipvs/testing has a strict fake. Implementations are
// safe for concurrent use and report failures as errors, never silently.
type Interface interface {
	// VirtualServers lists every virtual server, Switchyard's or not.
	VirtualServers() ([]VirtualServer, error)
	// AddVirtualServer creates a virtual server; it fails if one with the key exists.
	AddVirtualServer(vs VirtualServer) error
	// UpdateVirtualServer changes the scheduler, flags and timeout of a virtual server.
	UpdateVirtualServer(vs VirtualServer) error
	// DeleteVirtualServer deletes a virtual server and its real servers.
	DeleteVirtualServer(k Key) error
	// RealServers lists the real servers of a virtual server, with connection counts.
	RealServers(k Key) ([]RealServerStatus, error)
	// AddRealServer adds a masquerading real server; it fails if it exists.
	AddRealServer(k Key, rs RealServer) error
	// UpdateRealServer changes a real server's weight.
	UpdateRealServer(k Key, rs RealServer) error
	// DeleteRealServer deletes a real server.
	DeleteRealServer(k Key, addr netip.AddrPort) error
	// SetTimeouts sets the kernel's TCP, TCP FIN and UDP timeouts; zeros are left
	// unchanged.
	SetTimeouts(t Timeouts) error
}

// Links manages the dummy interface that holds the VIPs. The Linux implementation is
// NewLinks.
type Links interface {
	// EnsureDummy creates the dummy link if it does not exist.
	EnsureDummy(name string) error
	// DeleteLink deletes a link if it exists.
	DeleteLink(name string) error
	// Addresses lists the addresses on a link, or ErrNoLink.
	Addresses(name string) ([]netip.Addr, error)
	// AddAddress adds a host address (/32 or /128) to a link.
	AddAddress(name string, ip netip.Addr) error
	// DeleteAddress removes an address from a link.
	DeleteAddress(name string, ip netip.Addr) error
}

// ErrNoLink is returned for a link that does not exist.
var ErrNoLink = errors.New("link not found")

// IPSets is the kernel's ipsets. The implementation for real hosts is NetlinkIPSets.
type IPSets interface {
	// Restore feeds `ipset restore` input; it stops at the first failing line.
	Restore(ctx context.Context, payload []byte) error
	// Entries lists the members of a set, or returns an error wrapping ErrNoSet.
	Entries(ctx context.Context, set string) ([]string, error)
	// Destroy destroys a set if it exists.
	Destroy(ctx context.Context, set string) error
}

// ErrNoSet is returned for a set that does not exist.
var ErrNoSet = errors.New("set not found")

// Sysctl reads and writes kernel parameters by their /proc/sys path, such as
// "net/ipv4/ip_forward". The implementation for real hosts is ProcSysctl.
type Sysctl interface {
	Get(name string) (string, error)
	Set(name, value string) error
}
