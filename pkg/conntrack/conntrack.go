// Package conntrack removes stale UDP conntrack entries after service changes.
//
// UDP has no connection teardown: a client that keeps sending to a service IP keeps its
// conntrack entry alive, and with it the DNAT to an endpoint that may be long gone —
// for hours with one-way senders (kubernetes#19029, #59368, #125467). After each
// successful apply the proxy deletes the entries whose original destination is a
// service frontend and whose reply source is no longer a serving endpoint of it. It
// deletes only entries proven stale, so a restart keeps working flows
// (kubernetes#122740).
package conntrack

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Flow is the part of a conntrack entry the stale-flow filter looks at.
type Flow struct {
	// Protocol is the L4 protocol.
	Protocol v1.Protocol
	// OrigDst is where the client sent the packet (a service frontend).
	OrigDst netip.AddrPort
	// ReplySrc is where replies come from: the endpoint after DNAT, or OrigDst when no
	// DNAT happened.
	ReplySrc netip.AddrPort
}

// Interface deletes stale conntrack entries. The netlink implementation is in
// netlink_linux.go; pkg/conntrack/testing has a strict fake.
type Interface interface {
	// DeleteStale deletes every entry of the family that filter matches, and reports
	// how many it read and deleted. An implementation may read only the entries whose
	// original destination is one of filter.Frontends(family) (the netlink one asks
	// the kernel to filter its dump so), but it decides each entry with filter.Match.
	DeleteStale(ctx context.Context, family v1.IPFamily, filter *StaleUDP) (Result, error)
}

// Result says what one DeleteStale call did, for metrics, logs and the figures in
// docs/reliability.md.
type Result struct {
	// Deleted is the number of entries deleted.
	Deleted int
	// Read is the number of entries the kernel handed over (after its own filter).
	Read int
	// Dumps is the number of table dumps (each one a walk of the kernel's hash table).
	Dumps int
}

// StaleUDP is a pure, precomputed filter: it matches UDP flows to a service frontend
// known in prev or next whose reply source is not a serving endpoint in next.
type StaleUDP struct {
	// allowed maps a frontend to the endpoints it may still reach. A frontend with an
	// empty set (deleted service, no endpoints) matches every flow to it that was
	// translated.
	allowed map[netip.AddrPort]map[netip.AddrPort]struct{}
	// nodePorts are the frontends in allowed that are a node address and node port.
	nodePorts map[netip.AddrPort]struct{}
}

// NewStaleUDP builds the filter for a sync from prev (the snapshot last applied, nil at
// start) to next. Only the UDP service ports changed since prev
// (next.ChangedSince(prev)) are considered, however many snapshots were taken in
// between; when that is unknown, and at start, all UDP service ports are.
func NewStaleUDP(prev, next *endpoints.Snapshot, nodeIPs []netip.Addr) *StaleUDP {
	f := &StaleUDP{allowed: map[netip.AddrPort]map[netip.AddrPort]struct{}{}, nodePorts: map[netip.AddrPort]struct{}{}}
	add := func(port *endpoints.ServicePort, eps []*endpoints.Endpoint) {
		if port.NodePort != 0 {
			for _, ip := range nodeIPs {
				f.nodePorts[netip.AddrPortFrom(ip, uint16(port.NodePort))] = struct{}{}
			}
		}
		serving := map[netip.AddrPort]struct{}{}
		for _, ep := range eps {
			if ep.Ready || ep.Serving {
				serving[ep.AddrPort()] = struct{}{}
			}
		}
		for _, fe := range frontends(port, nodeIPs) {
			if existing, ok := f.allowed[fe]; ok {
				for ap := range serving {
					existing[ap] = struct{}{}
				}
				continue
			}
			f.allowed[fe] = serving
		}
	}
	consider := func(name endpoints.ServicePortName) {
		if name.Protocol != v1.ProtocolUDP {
			return
		}
		if port := next.Services[name]; port != nil {
			add(port, next.Endpoints[name])
		}
		if prev != nil {
			if port := prev.Services[name]; port != nil {
				// Frontends that disappeared: no endpoint is allowed any more, unless
				// the same frontend is still served by next (added above).
				add(port, nil)
			}
		}
	}
	changed, ok := next.ChangedSince(prev)
	if !ok {
		// What changed since prev is unknown: check every UDP port, old and new.
		changed = map[endpoints.ServicePortName]struct{}{}
		for name := range next.Services {
			changed[name] = struct{}{}
		}
		if prev != nil {
			for name := range prev.Services {
				changed[name] = struct{}{}
			}
		}
	}
	for name := range changed {
		consider(name)
	}
	return f
}

// Frontends lists, sorted, the frontends of family whose entries Match may select:
// the original destinations an implementation must read.
func (f *StaleUDP) Frontends(family v1.IPFamily) []netip.AddrPort {
	var out []netip.AddrPort
	for fe := range f.allowed {
		if endpoints.FamilyOf(fe.Addr()) == family {
			out = append(out, fe)
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

// Dump says which entries one kernel-filtered dump reads: UDP entries whose original
// destination is Addr:Port, or any address on Port when Addr is the zero Addr.
type Dump struct {
	// Addr is the destination address, or the zero Addr for any.
	Addr netip.Addr
	// Port is the destination port.
	Port uint16
}

// String returns "addr:port", "*:port", or "*" for every UDP entry.
func (d Dump) String() string {
	switch {
	case d.Addr.IsValid():
		return netip.AddrPortFrom(d.Addr, d.Port).String()
	case d.Port != 0:
		return fmt.Sprintf("*:%d", d.Port)
	}
	return "*"
}

// Dumps lists, in the order of Frontends, dumps of family that together read every entry Match may
// select: one per service address and port, and one per node port whatever the node
// address, since a node port is reached on each of the node's addresses and ports in
// the node-port range carry little else. Each dump is a walk of the kernel's whole
// hash table, so the fewer the better; service ports are not grouped the same way,
// because a port such as 53 carries every DNS flow of the node.
func (f *StaleUDP) Dumps(family v1.IPFamily) []Dump {
	seen := map[Dump]struct{}{}
	var out []Dump
	for _, fe := range f.Frontends(family) {
		d := Dump{Addr: fe.Addr(), Port: fe.Port()}
		if _, nodePort := f.nodePorts[fe]; nodePort {
			d.Addr = netip.Addr{}
		}
		if _, dup := seen[d]; !dup {
			seen[d] = struct{}{}
			out = append(out, d)
		}
	}
	return out
}

// Empty reports whether the filter can match nothing, so the conntrack table need
// not be read at all.
func (f *StaleUDP) Empty() bool { return len(f.allowed) == 0 }

// Match reports whether a flow is stale.
func (f *StaleUDP) Match(flow Flow) bool {
	if flow.Protocol != v1.ProtocolUDP {
		return false
	}
	allowed, ok := f.allowed[flow.OrigDst]
	if !ok {
		return false
	}
	if flow.ReplySrc == flow.OrigDst {
		// Not translated: a packet that reached no endpoint (rejected, or sent before
		// the rules existed). Its entry would stop a later DNAT, so it is stale too.
		return true
	}
	_, serving := allowed[flow.ReplySrc]
	return !serving
}

// frontends lists the addresses at which a service port is reached.
func frontends(port *endpoints.ServicePort, nodeIPs []netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	p := uint16(port.Port)
	for _, ip := range port.ClusterIPs {
		out = append(out, netip.AddrPortFrom(ip, p))
	}
	for _, ip := range port.ExternalIPs {
		out = append(out, netip.AddrPortFrom(ip, p))
	}
	for _, ip := range port.LoadBalancerVIPs {
		out = append(out, netip.AddrPortFrom(ip, p))
	}
	if port.NodePort != 0 {
		for _, ip := range nodeIPs {
			out = append(out, netip.AddrPortFrom(ip, uint16(port.NodePort)))
		}
	}
	return out
}
