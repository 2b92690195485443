//go:build linux

package ipvs

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	libipvs "github.com/moby/ipvs"
	v1 "k8s.io/api/core/v1"
)

// Handle is Interface over github.com/moby/ipvs.
type Handle struct {
	mu     sync.Mutex
	handle *libipvs.Handle
}

var _ Interface = &Handle{}

// NewIPVS opens the IPVS netlink interface of the current network namespace. It
// fails when the kernel has no IPVS: moby/ipvs would otherwise log a warning and then
// accept every request without doing anything.
func NewIPVS() (*Handle, error) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return nil, fmt.Errorf("IPVS is not available (is the ip_vs module loaded?): %w", err)
	}
	h, err := libipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("opening the IPVS netlink socket: %w", err)
	}
	if _, err := h.GetServices(); err != nil {
		h.Close()
		return nil, fmt.Errorf("IPVS does not answer: %w", err)
	}
	return &Handle{handle: h}, nil
}

// Close releases the netlink socket.
func (k *Handle) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.handle.Close()
}

func protoNumber(p v1.Protocol) uint16 {
	switch p {
	case v1.ProtocolUDP:
		return syscall.IPPROTO_UDP
	case v1.ProtocolSCTP:
		return syscall.IPPROTO_SCTP
	}
	return syscall.IPPROTO_TCP
}

func protoName(n uint16) (v1.Protocol, bool) {
	switch n {
	case syscall.IPPROTO_TCP:
		return v1.ProtocolTCP, true
	case syscall.IPPROTO_UDP:
		return v1.ProtocolUDP, true
	case syscall.IPPROTO_SCTP:
		return v1.ProtocolSCTP, true
	}
	return "", false
}

func toService(vs VirtualServer) *libipvs.Service {
	s := &libipvs.Service{
		Address:   net.IP(vs.Addr.AsSlice()),
		Protocol:  protoNumber(vs.Protocol),
		Port:      vs.Port,
		SchedName: vs.Scheduler,
		Flags:     vs.Flags,
		Timeout:   vs.Timeout,
	}
	if vs.Addr.Is4() {
		s.AddressFamily, s.Netmask = syscall.AF_INET, 0xffffffff
	} else {
		s.AddressFamily, s.Netmask = syscall.AF_INET6, 128
	}
	return s
}

func keyService(k Key) *libipvs.Service { return toService(VirtualServer{Key: k}) }

func fromService(s *libipvs.Service) (VirtualServer, bool) {
	proto, ok := protoName(s.Protocol)
	addr, ok2 := netip.AddrFromSlice(s.Address)
	if !ok || !ok2 || s.FWMark != 0 {
		return VirtualServer{}, false
	}
	if s.AddressFamily == syscall.AF_INET {
		addr = addr.Unmap()
	}
	return VirtualServer{
		Key:       Key{Addr: addr, Port: s.Port, Protocol: proto},
		Scheduler: s.SchedName,
		Flags:     s.Flags &^ FlagHashed,
		Timeout:   s.Timeout,
	}, true
}

func toDestination(addr netip.AddrPort, weight int) *libipvs.Destination {
	d := &libipvs.Destination{
		Address:         net.IP(addr.Addr().AsSlice()),
		Port:            addr.Port(),
		Weight:          weight,
		ConnectionFlags: libipvs.ConnectionFlagMasq,
	}
	if addr.Addr().Is4() {
		d.AddressFamily = syscall.AF_INET
	} else {
		d.AddressFamily = syscall.AF_INET6
	}
	return d
}

// VirtualServers implements Interface. Firewall-mark services and protocols other
// than TCP, UDP and SCTP are left out: Switchyard never creates them.
func (k *Handle) VirtualServers() ([]VirtualServer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	svcs, err := k.handle.GetServices()
	if err != nil {
		return nil, fmt.Errorf("listing IPVS services: %w", err)
	}
	out := make([]VirtualServer, 0, len(svcs))
	for _, s := range svcs {
		if vs, ok := fromService(s); ok {
			out = append(out, vs)
		}
	}
	return out, nil
}

// AddVirtualServer implements Interface, and reads the service back: moby/ipvs returns
// nil when IPVS is missing.
func (k *Handle) AddVirtualServer(vs VirtualServer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.handle.NewService(toService(vs)); err != nil {
		return fmt.Errorf("adding IPVS service %s: %w", vs.Key, err)
	}
	if !k.handle.IsServicePresent(keyService(vs.Key)) {
		return fmt.Errorf("adding IPVS service %s: the kernel did not keep it (IPVS missing?)", vs.Key)
	}
	return nil
}

// UpdateVirtualServer implements Interface.
func (k *Handle) UpdateVirtualServer(vs VirtualServer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.handle.UpdateService(toService(vs)); err != nil {
		return fmt.Errorf("updating IPVS service %s: %w", vs.Key, err)
	}
	return nil
}

// DeleteVirtualServer implements Interface.
func (k *Handle) DeleteVirtualServer(key Key) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.handle.DelService(keyService(key)); err != nil {
		return fmt.Errorf("deleting IPVS service %s: %w", key, err)
	}
	return nil
}

// RealServers implements Interface.
func (k *Handle) RealServers(key Key) ([]RealServerStatus, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	dests, err := k.handle.GetDestinations(keyService(key))
	if err != nil {
		return nil, fmt.Errorf("listing real servers of %s: %w", key, err)
	}
	out := make([]RealServerStatus, 0, len(dests))
	for _, d := range dests {
		addr, ok := netip.AddrFromSlice(d.Address)
		if !ok {
			continue
		}
		if key.Addr.Is4() {
			addr = addr.Unmap()
		}
		out = append(out, RealServerStatus{
			RealServer:    RealServer{Addr: netip.AddrPortFrom(addr, d.Port), Weight: d.Weight},
			ActiveConns:   d.ActiveConnections,
			InactiveConns: d.InactiveConnections,
		})
	}
	return out, nil
}

// AddRealServer implements Interface.
func (k *Handle) AddRealServer(key Key, rs RealServer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.handle.NewDestination(keyService(key), toDestination(rs.Addr, rs.Weight)); err != nil {
		return fmt.Errorf("adding real server %s to %s: %w", rs.Addr, key, err)
	}
	return nil
}

// UpdateRealServer implements Interface.
func (k *Handle) UpdateRealServer(key Key, rs RealServer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.handle.UpdateDestination(keyService(key), toDestination(rs.Addr, rs.Weight)); err != nil {
		return fmt.Errorf("setting weight %d on real server %s of %s: %w", rs.Weight, rs.Addr, key, err)
	}
	return nil
}

// DeleteRealServer implements Interface.
func (k *Handle) DeleteRealServer(key Key, addr netip.AddrPort) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.handle.DelDestination(keyService(key), toDestination(addr, 0)); err != nil {
		return fmt.Errorf("deleting real server %s of %s: %w", addr, key, err)
	}
	return nil
}

// SetTimeouts implements Interface. The kernel treats a zero as "leave unchanged".
func (k *Handle) SetTimeouts(t Timeouts) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.handle.SetConfig(&libipvs.Config{TimeoutTCP: t.TCP, TimeoutTCPFin: t.TCPFin, TimeoutUDP: t.UDP}); err != nil {
		return fmt.Errorf("setting IPVS timeouts: %w", err)
	}
	return nil
}
