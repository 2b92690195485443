package ipvs

import (
	"cmp"
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Service flags, as in the kernel's ip_vs.h and kube-proxy's util/ipvs.
const (
	// FlagPersistent makes a virtual server persistent: ClientIP session affinity.
	FlagPersistent uint32 = 0x1
	// FlagHashed is set by the kernel on every virtual server it holds; it is masked
	// off when reading back.
	FlagHashed uint32 = 0x2
	// FlagSourceHash (IP_VS_SVC_F_SCHED2, ipvsadm's mh-port) makes the mh scheduler
	// hash on the source port as well as the address; kube-proxy sets it for mh.
	FlagSourceHash uint32 = 0x10
)

// Key identifies a virtual server: its address, port and protocol.
type Key struct {
	Addr     netip.Addr
	Port     uint16
	Protocol v1.Protocol
}

// String returns "TCP/10.96.0.1:80".
func (k Key) String() string {
	return string(k.Protocol) + "/" + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Compare orders keys by address, port and protocol.
func (k Key) Compare(o Key) int {
	if c := k.Addr.Compare(o.Addr); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Port, o.Port); c != 0 {
		return c
	}
	return strings.Compare(string(k.Protocol), string(o.Protocol))
}

// VirtualServer is an IPVS service without its real servers.
type VirtualServer struct {
	Key
	// Scheduler is the IPVS scheduler name, such as "rr".
	Scheduler string
	// Flags are the service flags, without FlagHashed.
	Flags uint32
	// Timeout is the persistence timeout in seconds, with FlagPersistent.
	Timeout uint32
}

// SameSettings reports whether two virtual servers have the same scheduler, flags and
// timeout, so that no update is needed.
func (vs *VirtualServer) SameSettings(o *VirtualServer) bool {
	return vs.Scheduler == o.Scheduler && vs.Flags == o.Flags && vs.Timeout == o.Timeout
}

// String describes the virtual server as ipvsadm would.
func (vs *VirtualServer) String() string {
	s := fmt.Sprintf("%s %s", vs.Key, vs.Scheduler)
	if vs.Flags&FlagPersistent != 0 {
		s += fmt.Sprintf(" persistent %d", vs.Timeout)
	}
	return s
}

// RealServer is one destination of a virtual server. Switchyard always uses masquerade
// (NAT) forwarding.
type RealServer struct {
	Addr   netip.AddrPort
	Weight int
}

// RealServerStatus is a real server as read back from the kernel, with its connection
// counts.
type RealServerStatus struct {
	RealServer
	// ActiveConns and InactiveConns are the kernel's connection counters; graceful
	// termination waits for both to reach zero.
	ActiveConns, InactiveConns int
}
