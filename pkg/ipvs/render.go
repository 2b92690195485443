package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// DesiredServer is a virtual server and the real servers it should have.
type DesiredServer struct {
	VirtualServer
	// RealServers are sorted by address; every weight is 1.
	RealServers []RealServer
}

// Fragment is everything one service port contributes to the IPVS state. Fragments of
// different service ports are independent, so a partial sync is a sum of per-service
// edits (with reference counts where two ports share an address or a set member).
type Fragment struct {
	// Name is the service port.
	Name endpoints.ServicePortName
	// Servers are the virtual servers, sorted by key.
	Servers []DesiredServer
	// Addresses are the VIPs to bind on the dummy interface, sorted, without duplicates.
	Addresses []netip.Addr
	// Entries are the ipset members, sorted.
	Entries []SetEntry
}

// RenderService computes the fragment of one service port for cfg's family: virtual
// servers for its cluster IP, external IPs, load-balancer VIPs and node ports, their
// real servers, the addresses to bind and the ipset members, following kube-proxy
// v1.37's IPVS syncProxyRules. It returns nil when the port has nothing of cfg's family.
//
// The error reports a problem that did not stop the render: an invalid scheduler
// annotation falls back to the default scheduler.
func RenderService(port *endpoints.ServicePort, allEndpoints []*endpoints.Endpoint, cfg *Config) (*Fragment, error) {
	// kube-proxy's IPVS proxier of one family sees that family's external and
	// load-balancer IPs only.
	port = port.OfFamily(cfg.Family)
	clusterIP := port.ClusterIP(cfg.Family)
	externalIPs := port.ExternalIPs
	lbIPs := port.LoadBalancerVIPs
	nodePortIPs := cfg.nodePortIPs()
	if port.NodePort == 0 {
		nodePortIPs = nil
	}
	if !clusterIP.IsValid() && len(externalIPs) == 0 && len(lbIPs) == 0 {
		// kube-proxy programs nothing for a service without a cluster IP of the family,
		// node ports included.
		return nil, nil
	}
	name := port.Name
	var err error
	scheduler := cfg.scheduler()
	if port.Scheduler != "" {
		if ValidScheduler(port.Scheduler) {
			scheduler = port.Scheduler
		} else {
			err = fmt.Errorf("%s: annotation %s=%q is not a scheduler (want one of %v); using %q",
				name, endpoints.SchedulerAnnotation, port.Scheduler, Schedulers, scheduler)
		}
	}
	var flags, timeout uint32
	if port.AffinityTimeoutSeconds > 0 {
		flags |= FlagPersistent
		timeout = uint32(port.AffinityTimeoutSeconds)
	}
	if scheduler == "mh" {
		flags |= FlagSourceHash
	}
	proto := v1.Protocol(strings.ToUpper(string(name.Protocol)))
	protoLower := strings.ToLower(string(proto))
	servicePort := uint16(port.Port)

	familyEndpoints := endpoints.EndpointsOf(allEndpoints, cfg.Family)
	sel := endpoints.Select(familyEndpoints, port, cfg.Node)
	internal := sel.Cluster
	if port.InternalPolicyLocal {
		internal = sel.Local
	}
	external := sel.Cluster
	if port.ExternalPolicyLocal {
		// Local endpoints only; with none here, kube-proxy's IPVS mode falls back to
		// the cluster-wide ones so that pods on this node can still reach the service
		// (kubernetes PR #97081). A VS cannot tell pod traffic from external traffic.
		external = sel.Local
		if len(external) == 0 {
			external = sel.Cluster
		}
	}

	f := &Fragment{Name: name}
	nodeIP := func(ip netip.Addr) bool { return slices.Contains(cfg.NodeIPs, ip) }
	addServer := func(ip netip.Addr, p uint16, eps []*endpoints.Endpoint) {
		ds := DesiredServer{VirtualServer: VirtualServer{
			Key:       Key{Addr: ip, Port: p, Protocol: proto},
			Scheduler: scheduler, Flags: flags, Timeout: timeout,
		}}
		for _, ep := range eps {
			ds.RealServers = append(ds.RealServers, RealServer{Addr: ep.AddrPort(), Weight: 1})
		}
		slices.SortFunc(ds.RealServers, func(a, b RealServer) int { return a.Addr.Compare(b.Addr) })
		ds.RealServers = slices.CompactFunc(ds.RealServers, func(a, b RealServer) bool { return a.Addr == b.Addr })
		f.Servers = append(f.Servers, ds)
	}
	entry := func(set, text string) { f.Entries = append(f.Entries, SetEntry{Set: set, Entry: text}) }
	ipPort := func(ip netip.Addr) string { return ip.String() + "," + protoLower + ":" + strconv.Itoa(int(port.Port)) }

	// Hairpin: a local endpoint reaching itself through the service is masqueraded by
	// the KUBE-LOOP-BACK rule.
	for _, ep := range familyEndpoints {
		if ep.NodeName == cfg.Node.Name && cfg.Node.Name != "" {
			entry(SetLoopBack, ep.IP.String()+","+protoLower+":"+strconv.Itoa(int(ep.Port))+","+ep.IP.String())
		}
	}
	if clusterIP.IsValid() {
		addServer(clusterIP, servicePort, internal)
		f.Addresses = append(f.Addresses, clusterIP)
		entry(SetClusterIP, ipPort(clusterIP))
	}
	for _, ip := range externalIPs {
		if port.ExternalPolicyLocal {
			entry(SetExternalIPLocal, ipPort(ip))
		} else {
			entry(SetExternalIP, ipPort(ip))
		}
		addServer(ip, servicePort, external)
		// An address the node already has must not be bound again (kubernetes#93175).
		if !nodeIP(ip) {
			f.Addresses = append(f.Addresses, ip)
		}
	}
	sourceRanges := port.SourceRangesOf(cfg.Family)
	for _, ip := range lbIPs {
		entry(SetLoadBalancer, ipPort(ip))
		if port.ExternalPolicyLocal {
			entry(SetLoadBalancerLocal, ipPort(ip))
		}
		if len(sourceRanges) > 0 {
			entry(SetLoadBalancerFW, ipPort(ip))
			allowFromNode := false
			for _, cidr := range sourceRanges {
				entry(SetLoadBalancerSourceCIDR, ipPort(ip)+","+cidr.String())
				for _, n := range cfg.NodeIPs {
					allowFromNode = allowFromNode || cidr.Contains(n)
				}
			}
			// Traffic the node sends to its own LB IP leaves with the LB IP as source
			// (it is bound locally); admit it when the ranges admit the node.
			if allowFromNode {
				entry(SetLoadBalancerSourceIP, ipPort(ip)+","+ip.String())
			}
		}
		addServer(ip, servicePort, external)
		if !nodeIP(ip) {
			f.Addresses = append(f.Addresses, ip)
		}
	}
	if port.NodePort != 0 {
		nodePort := strconv.Itoa(int(port.NodePort))
		switch proto {
		case v1.ProtocolTCP, v1.ProtocolUDP:
			set, localSet := SetNodePortTCP, SetNodePortLocalTCP
			if proto == v1.ProtocolUDP {
				set, localSet = SetNodePortUDP, SetNodePortLocalUDP
			}
			entry(set, nodePort)
			if port.ExternalPolicyLocal {
				entry(localSet, nodePort)
			}
		case v1.ProtocolSCTP:
			for _, ip := range nodePortIPs {
				entry(SetNodePortSCTP, ip.String()+",sctp:"+nodePort)
				if port.ExternalPolicyLocal {
					entry(SetNodePortLocalSCTP, ip.String()+",sctp:"+nodePort)
				}
			}
		}
		for _, ip := range nodePortIPs {
			addServer(ip, uint16(port.NodePort), external)
		}
	}
	if port.HealthCheckNodePort != 0 {
		entry(SetHealthCheckNodePort, strconv.Itoa(int(port.HealthCheckNodePort)))
	}
	for _, ip := range f.Addresses {
		entry(SetIPVSIPs, ip.String())
	}

	slices.SortFunc(f.Servers, func(a, b DesiredServer) int { return a.Key.Compare(b.Key) })
	f.Servers = slices.CompactFunc(f.Servers, func(a, b DesiredServer) bool { return a.Key == b.Key })
	slices.SortFunc(f.Addresses, netip.Addr.Compare)
	f.Addresses = slices.Compact(f.Addresses)
	slices.SortFunc(f.Entries, func(a, b SetEntry) int {
		if c := strings.Compare(a.Set, b.Set); c != 0 {
			return c
		}
		return strings.Compare(a.Entry, b.Entry)
	})
	f.Entries = slices.Compact(f.Entries)
	return f, err
}

// State is the whole desired IPVS state of one family.
type State struct {
	// Servers are every virtual server, sorted by key.
	Servers []DesiredServer
	// Addresses are the VIPs to bind on the dummy interface, sorted.
	Addresses []netip.Addr
	// Sets are the members of every ipset.
	Sets Sets
	// Fragments are the per-service-port fragments State was assembled from.
	Fragments map[endpoints.ServicePortName]*Fragment
	// Owners names the service port that owns each virtual server.
	Owners map[Key]endpoints.ServicePortName
	// Errors are the problems found (bad annotations, two ports claiming one virtual
	// server); none stopped the others from being rendered.
	Errors []error
}

// Render computes the desired state of every service port in snap for cfg's family.
// It is deterministic: when two service ports claim the same virtual server (the same
// external IP and port, say), the first in name order keeps it and the other is
// reported in Errors.
func Render(snap *endpoints.Snapshot, cfg *Config) *State {
	st := &State{
		Sets:      Sets{},
		Fragments: map[endpoints.ServicePortName]*Fragment{},
		Owners:    map[Key]endpoints.ServicePortName{},
	}
	addrs := map[netip.Addr]struct{}{}
	members := map[SetEntry]struct{}{}
	for _, name := range snap.SortedServices() {
		f, err := RenderService(snap.Services[name], snap.Endpoints[name], cfg)
		if err != nil {
			st.Errors = append(st.Errors, err)
		}
		if f == nil {
			continue
		}
		st.Fragments[name] = f
		for _, s := range f.Servers {
			if owner, taken := st.Owners[s.Key]; taken {
				st.Errors = append(st.Errors, fmt.Errorf("%s: virtual server %s is already used by %s; skipped", name, s.Key, owner))
				continue
			}
			st.Owners[s.Key] = name
			st.Servers = append(st.Servers, s)
		}
		for _, a := range f.Addresses {
			addrs[a] = struct{}{}
		}
		for _, e := range f.Entries {
			if _, dup := members[e]; !dup {
				members[e] = struct{}{}
				st.Sets[e.Set] = append(st.Sets[e.Set], e.Entry)
			}
		}
	}
	slices.SortFunc(st.Servers, func(a, b DesiredServer) int { return a.Key.Compare(b.Key) })
	for a := range addrs {
		st.Addresses = append(st.Addresses, a)
	}
	slices.SortFunc(st.Addresses, netip.Addr.Compare)
	for set := range st.Sets {
		slices.Sort(st.Sets[set])
	}
	return st
}
