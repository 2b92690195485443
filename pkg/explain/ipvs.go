package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// IPVSInput is what IPVS mode's explanation reads for one IP family: the IPVS table,
// the companion iptables rules and the ipsets they match, from the kernel (live) or
// from a render (offline).
type IPVSInput struct {
	// Family is the IP family of everything below.
	Family v1.IPFamily
	// Servers are the virtual servers with their real servers.
	Servers []ipvs.DesiredServer
	// Rules are the companion rules (filter and nat tables).
	Rules *ruleset.Ruleset
	// Sets are the ipsets' contents by name (the family's names, KUBE-6-… for IPv6).
	Sets map[string]*tracer.IPSet
	// LocalAddrs are the node's own addresses, including the VIPs bound on
	// kube-ipvs0: IPVS only sees packets for local addresses.
	LocalAddrs []netip.Addr
	// Snapshot, when set, names the Service behind a virtual server and the nodes
	// of its endpoints. Without it the virtual server is explained unnamed.
	Snapshot *endpoints.Snapshot
	// NodeName is this node's name, to tell local endpoints apart.
	NodeName string
	// Owners names the pod and node behind endpoint addresses; optional.
	Owners map[netip.Addr]Owner
	// PodInterface is the interface a pod's packets arrive on, for local-traffic
	// detection by interface; optional.
	PodInterface string
	// OutsideInterface is the interface packets from outside arrive on; default
	// "eth0".
	OutsideInterface string
}

// ExplainIPVS explains pkt against IPVS mode's state: the companion rules up to the
// virtual server (source-range firewall, the reject of unknown ports on VIPs, the
// masquerade mark), the virtual server's scheduler and real servers, and for each real
// server whether the packet is masqueraded on its way there.
func ExplainIPVS(in *IPVSInput, pkt Packet) (*Explanation, error) {
	if pkt.Src.Is4() != pkt.Dst.Addr().Is4() {
		return nil, fmt.Errorf("source %s and destination %s are of different IP families", pkt.Src, pkt.Dst.Addr())
	}
	e := &Explanation{Mode: "ipvs", Packet: pkt}
	tpkt := in.tracerPacket(pkt)
	node := tracer.Node{LocalAddrs: in.LocalAddrs}
	opts := tracer.Options{IPSets: in.Sets}

	vs := in.virtualServer(pkt)
	if vs == nil {
		// No virtual server: the packet meets only the companion rules, which reject
		// new connections to a VIP on a port no Service uses.
		res, err := tracer.Trace(in.Rules, node, tpkt, opts)
		if err != nil {
			return nil, err
		}
		o := res.Outcomes[0]
		e.Steps = ipvsSteps(o.Hits, in.Family)
		switch o.Verdict {
		case tracer.Accept:
			e.Verdict = NotAService
			e.Reason = fmt.Sprintf("no IPVS virtual server is %s %s; the proxy's rules let the packet pass untouched", strings.ToUpper(pkt.Proto), pkt.Dst)
		case tracer.Reject:
			e.Verdict = Rejected
			e.Reason = fmt.Sprintf("%s is a Service address on %s, but no Service listens on %s port %d there: new connections are refused (KUBE-IPVS-FILTER, kubernetes#72236)",
				pkt.Dst.Addr(), ipvs.DummyInterface, pkt.Proto, pkt.Dst.Port())
		default:
			e.Verdict = Dropped
			e.Reason = "dropped by " + ipvsLastChain(o.Hits)
		}
		return e, nil
	}

	e.Service = in.service(vs.Key, pkt.Dst)
	e.Scheduler = vs.Scheduler
	if vs.Flags&ipvs.FlagPersistent != 0 {
		e.Affinity = &Affinity{TimeoutSeconds: int(vs.Timeout)}
	}
	name := "virtual server " + vs.Key.String()
	// A real server of weight 0 is draining (graceful termination): the schedulers
	// pass it over for new connections, which are refused when no other is left.
	var active []ipvs.RealServer
	for _, rs := range vs.RealServers {
		if rs.Weight > 0 {
			active = append(active, rs)
		}
	}
	draining := len(vs.RealServers) - len(active)
	if len(active) == 0 {
		opts.IPVS = &tracer.IPVS{VirtualServer: vs.Key.String()}
		res, err := tracer.Trace(in.Rules, node, tpkt, opts)
		if err != nil {
			return nil, err
		}
		o := res.Outcomes[0]
		e.Steps = ipvsSteps(o.Hits, in.Family)
		if o.Verdict == tracer.Drop {
			e.Verdict, e.Reason = Dropped, ipvsDropReason(o.Hits, pkt)
			return e, nil
		}
		e.Verdict = Rejected
		e.Reason = name + " has no real servers (the Service has no ready endpoints): the kernel refuses the connection with ICMP port unreachable"
		if draining > 0 {
			e.Reason = fmt.Sprintf("%s has no real servers that take new connections (the Service has no ready endpoints; %d of weight 0 are draining): the kernel refuses the connection with ICMP port unreachable", name, draining)
		}
		return e, nil
	}

	delivered := 0
	var firstDrop []tracer.Hit
	for i, rs := range active {
		opts.IPVS = &tracer.IPVS{VirtualServer: vs.Key.String(), Dest: rs.Addr}
		res, err := tracer.Trace(in.Rules, node, tpkt, opts)
		if err != nil {
			return nil, err
		}
		o := res.Outcomes[0]
		if i == 0 {
			e.Steps = ipvsSteps(o.Hits, in.Family)
		}
		if o.Verdict != tracer.Accept {
			firstDrop = o.Hits
			continue
		}
		delivered++
		weight := rs.Weight
		ep := Endpoint{Address: rs.Addr, Weight: &weight, Masquerade: o.Masquerade}
		if meta := in.endpoint(rs.Addr); meta != nil {
			ep.Node = meta.NodeName
		}
		if owner, ok := in.Owners[rs.Addr.Addr()]; ok {
			ep.Pod = owner.Pod
			if owner.Node != "" {
				ep.Node = owner.Node
			}
		}
		ep.Local = ep.Node != "" && ep.Node == in.NodeName
		e.Endpoints = append(e.Endpoints, ep)
		if o.Masquerade && !e.Masquerade {
			e.Masquerade = true
			e.MasqueradeReason = ipvsMasqueradeReason(o.Hits, in.Family)
		}
	}
	if delivered == 0 {
		e.Verdict = Dropped
		e.Reason = ipvsDropReason(firstDrop, pkt)
		if len(firstDrop) > 0 {
			if last := firstDrop[len(firstDrop)-1]; last.Rule != nil && last.Rule.Target.Kind == ruleset.TargetReject {
				e.Verdict = Rejected
			}
		}
		return e, nil
	}
	if !e.Masquerade {
		e.MasqueradeReason = "the client's address is kept: " + ipvsKeptReason(pkt, e.Service)
	}
	slices.SortFunc(e.Endpoints, func(a, b Endpoint) int { return a.Address.Compare(b.Address) })
	e.Verdict = Delivered
	e.Reason = fmt.Sprintf("%s sends each new connection to one of its %d real servers, picked by the %q scheduler", name, delivered, vs.Scheduler)
	if draining > 0 {
		e.Reason += fmt.Sprintf("; %d more of weight 0 are draining and get no new connections", draining)
	}
	return e, nil
}

// tracerPacket turns explain's packet into the tracer's. Pods and outside clients
// arrive on an interface (PREROUTING); the node's own processes start in OUTPUT.
func (in *IPVSInput) tracerPacket(pkt Packet) tracer.Packet {
	tp := tracer.Packet{Src: pkt.Src, Dst: pkt.Dst.Addr(), Proto: pkt.Proto, SrcPort: 40000, DstPort: int(pkt.Dst.Port())}
	switch pkt.From {
	case FromNode:
		tp.Origin = tracer.FromLocalProcess
	case FromPod:
		tp.InIface = in.PodInterface
	default:
		tp.InIface = in.OutsideInterface
		if tp.InIface == "" {
			tp.InIface = "eth0"
		}
	}
	return tp
}

// virtualServer returns the virtual server for the packet's destination, or nil.
func (in *IPVSInput) virtualServer(pkt Packet) *ipvs.DesiredServer {
	key := ipvs.Key{Addr: pkt.Dst.Addr(), Port: pkt.Dst.Port(), Protocol: v1.Protocol(strings.ToUpper(pkt.Proto))}
	for i := range in.Servers {
		if in.Servers[i].Key == key {
			return &in.Servers[i]
		}
	}
	return nil
}

// service finds the Service port behind a virtual server in the snapshot, and which
// of its addresses the packet was sent to.
func (in *IPVSInput) service(key ipvs.Key, dst netip.AddrPort) *Service {
	if in.Snapshot == nil {
		return nil
	}
	for _, name := range in.Snapshot.SortedServices() {
		sp := in.Snapshot.Services[name]
		if !strings.EqualFold(string(name.Protocol), string(key.Protocol)) {
			continue
		}
		kind := AddressKind("")
		switch {
		case int32(dst.Port()) == sp.Port && slices.Contains(sp.ClusterIPs, dst.Addr()):
			kind = ClusterIP
		case int32(dst.Port()) == sp.Port && slices.Contains(sp.ExternalIPs, dst.Addr()):
			kind = ExternalIP
		case int32(dst.Port()) == sp.Port && slices.Contains(sp.LoadBalancerVIPs, dst.Addr()):
			kind = LoadBalancerIP
		case sp.NodePort != 0 && int32(dst.Port()) == sp.NodePort && slices.Contains(in.LocalAddrs, dst.Addr()):
			kind = NodePort
		}
		if kind != "" {
			return &Service{Namespace: name.Namespace, Name: name.Name, Port: name.Port, Kind: kind}
		}
	}
	return nil
}

// endpoint finds the snapshot's endpoint at addr, for its node.
func (in *IPVSInput) endpoint(addr netip.AddrPort) *endpoints.Endpoint {
	if in.Snapshot == nil {
		return nil
	}
	for _, eps := range in.Snapshot.Endpoints {
		for _, ep := range eps {
			if ep.AddrPort() == addr {
				return ep
			}
		}
	}
	return nil
}
