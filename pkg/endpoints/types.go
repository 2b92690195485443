package endpoints

import (
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ServicePortName identifies one port of one Service, as kube-proxy does: the service's
// namespace and name, the port's name (empty for a single unnamed port) and its protocol.
type ServicePortName struct {
	types.NamespacedName
	Port     string
	Protocol v1.Protocol
}

// String returns "namespace/name:port", or "namespace/name" when the port has no name.
// This exact text is hashed into chain names and printed in rule comments, so it must
// match kube-proxy's ServicePortName.String byte for byte.
func (n ServicePortName) String() string {
	if n.Port == "" {
		return n.Namespace + "/" + n.Name
	}
	return n.Namespace + "/" + n.Name + ":" + n.Port
}

// Compare orders service port names by namespace, name, port name and protocol, so that
// renders are deterministic.
func (n ServicePortName) Compare(o ServicePortName) int {
	if n.Namespace != o.Namespace {
		return cmpString(n.Namespace, o.Namespace)
	}
	if n.Name != o.Name {
		return cmpString(n.Name, o.Name)
	}
	if n.Port != o.Port {
		return cmpString(n.Port, o.Port)
	}
	return cmpString(string(n.Protocol), string(o.Protocol))
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ServicePort is everything kube-proxy programs for one port of one Service, for both IP
// families. Values are immutable once they are in a Snapshot.
type ServicePort struct {
	// Name identifies the port.
	Name ServicePortName
	// Port is the service port number, used with cluster IPs, external IPs and LB IPs.
	Port int32
	// NodePort is the node port, or 0.
	NodePort int32
	// ClusterIPs holds at most one cluster IP per family.
	ClusterIPs []netip.Addr
	// ExternalIPs are spec.externalIPs, de-duplicated, in spec order.
	ExternalIPs []netip.Addr
	// LoadBalancerVIPs are the status.loadBalancer.ingress IPs whose ipMode is VIP or unset.
	LoadBalancerVIPs []netip.Addr
	// LoadBalancerSourceRanges are spec.loadBalancerSourceRanges, masked, de-duplicated.
	LoadBalancerSourceRanges []netip.Prefix
	// ExternalPolicyLocal is externalTrafficPolicy: Local on an externally reachable service.
	ExternalPolicyLocal bool
	// InternalPolicyLocal is internalTrafficPolicy: Local.
	InternalPolicyLocal bool
	// HealthCheckNodePort serves the local-endpoint health check, or 0.
	HealthCheckNodePort int32
	// AffinityTimeoutSeconds is the ClientIP affinity timeout, or 0 without affinity.
	AffinityTimeoutSeconds int32
	// Scheduler is the IPVS scheduler asked for by the SchedulerAnnotation, or "".
	Scheduler string
}

// ClusterIP returns the cluster IP of the given family, or the zero Addr.
func (p *ServicePort) ClusterIP(family v1.IPFamily) netip.Addr {
	for _, ip := range p.ClusterIPs {
		if FamilyOf(ip) == family {
			return ip
		}
	}
	return netip.Addr{}
}

// ExternalIPsOf returns the external IPs of the given family.
func (p *ServicePort) ExternalIPsOf(family v1.IPFamily) []netip.Addr {
	return addrsOfFamily(p.ExternalIPs, family)
}

// LoadBalancerVIPsOf returns the load-balancer VIPs of the given family.
func (p *ServicePort) LoadBalancerVIPsOf(family v1.IPFamily) []netip.Addr {
	return addrsOfFamily(p.LoadBalancerVIPs, family)
}

// SourceRangesOf returns the load-balancer source ranges of the given family. As in
// kube-proxy, a zero-length prefix (0.0.0.0/0, ::/0) means "allow any" and so yields none.
func (p *ServicePort) SourceRangesOf(family v1.IPFamily) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range p.LoadBalancerSourceRanges {
		if FamilyOf(r.Addr()) != family {
			continue
		}
		if r.Bits() == 0 {
			return nil
		}
		out = append(out, r)
	}
	return out
}

// OfFamily returns the port as kube-proxy's proxier of one family sees it: only the
// external IPs and load-balancer VIPs of that family. ExternallyAccessible, and with
// it UsesClusterEndpoints and UsesLocalEndpoints, then answer for that family alone,
// so that, as in kube-proxy, a dual-stack service with an IPv4 external IP has no
// KUBE-EXT chain in ip6tables (the randomised testbed differential found this). It
// returns p itself when nothing needs filtering.
func (p *ServicePort) OfFamily(family v1.IPFamily) *ServicePort {
	externalIPs := addrsOfFamily(p.ExternalIPs, family)
	vips := addrsOfFamily(p.LoadBalancerVIPs, family)
	if len(externalIPs) == len(p.ExternalIPs) && len(vips) == len(p.LoadBalancerVIPs) {
		return p
	}
	view := *p
	view.ExternalIPs, view.LoadBalancerVIPs = externalIPs, vips
	return &view
}

// ExternallyAccessible reports whether the port is reachable by anything other than its
// cluster IP: a node port, an external IP or a load-balancer VIP (of any family; see
// OfFamily for one family's view).
func (p *ServicePort) ExternallyAccessible() bool {
	return p.NodePort != 0 || len(p.ExternalIPs) != 0 || len(p.LoadBalancerVIPs) != 0
}

// UsesClusterEndpoints reports whether any traffic to the port goes to cluster-wide
// endpoints. Even with externalTrafficPolicy Local, traffic from pods and from the node
// itself is short-circuited to the cluster-wide set, so an externally reachable port
// always uses them.
func (p *ServicePort) UsesClusterEndpoints() bool {
	return !p.InternalPolicyLocal || p.ExternallyAccessible()
}

// UsesLocalEndpoints reports whether any traffic to the port is limited to this node's
// endpoints.
func (p *ServicePort) UsesLocalEndpoints() bool {
	return p.InternalPolicyLocal || (p.ExternalPolicyLocal && p.ExternallyAccessible())
}

// Equal reports whether two service ports program the same rules.
func (p *ServicePort) Equal(o *ServicePort) bool {
	if p == nil || o == nil {
		return p == o
	}
	return p.Name == o.Name && p.Port == o.Port && p.NodePort == o.NodePort &&
		slices.Equal(p.ClusterIPs, o.ClusterIPs) &&
		slices.Equal(p.ExternalIPs, o.ExternalIPs) &&
		slices.Equal(p.LoadBalancerVIPs, o.LoadBalancerVIPs) &&
		slices.Equal(p.LoadBalancerSourceRanges, o.LoadBalancerSourceRanges) &&
		p.ExternalPolicyLocal == o.ExternalPolicyLocal &&
		p.InternalPolicyLocal == o.InternalPolicyLocal &&
		p.HealthCheckNodePort == o.HealthCheckNodePort &&
		p.AffinityTimeoutSeconds == o.AffinityTimeoutSeconds &&
		p.Scheduler == o.Scheduler
}

// Endpoint is one backend address of a service port, with the conditions and hints that
// endpoint selection needs.
type Endpoint struct {
	// IP is the endpoint's address (the first of the EndpointSlice endpoint's addresses).
	IP netip.Addr
	// Port is the target port number.
	Port int32
	// NodeName is the node the endpoint runs on, or "".
	NodeName string
	// Zone is the endpoint's zone, or "".
	Zone string
	// Ready, Serving and Terminating are the EndpointSlice conditions, with the API's
	// defaults applied: nil ready and nil serving mean true, nil terminating means false.
	Ready, Serving, Terminating bool
	// ZoneHints and NodeHints are hints.forZones and hints.forNodes, sorted.
	ZoneHints, NodeHints []string
}

// String returns "ip:port", with brackets around IPv6 addresses, as DNAT and IPVS print it.
func (e *Endpoint) String() string {
	return netip.AddrPortFrom(e.IP, uint16(e.Port)).String()
}

// AddrPort returns the endpoint's address and port.
func (e *Endpoint) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(e.IP, uint16(e.Port))
}

// Equal reports whether two endpoints are the same in every field that affects rules.
func (e *Endpoint) Equal(o *Endpoint) bool {
	return e.IP == o.IP && e.Port == o.Port && e.NodeName == o.NodeName && e.Zone == o.Zone &&
		e.Ready == o.Ready && e.Serving == o.Serving && e.Terminating == o.Terminating &&
		slices.Equal(e.ZoneHints, o.ZoneHints) && slices.Equal(e.NodeHints, o.NodeHints)
}

// endpointsEqual compares two sorted endpoint lists.
func endpointsEqual(a, b []*Endpoint) bool {
	return slices.EqualFunc(a, b, (*Endpoint).Equal)
}

// FamilyOf returns the IP family of an address.
func FamilyOf(ip netip.Addr) v1.IPFamily {
	if ip.Is4() || ip.Is4In6() {
		return v1.IPv4Protocol
	}
	return v1.IPv6Protocol
}

func addrsOfFamily(addrs []netip.Addr, family v1.IPFamily) []netip.Addr {
	n := 0
	for _, ip := range addrs {
		if FamilyOf(ip) == family {
			n++
		}
	}
	if n == len(addrs) {
		return addrs
	}
	out := make([]netip.Addr, 0, n)
	for _, ip := range addrs {
		if FamilyOf(ip) == family {
			out = append(out, ip)
		}
	}
	return out
}

// EndpointsOf returns the endpoints of the given family.
func EndpointsOf(eps []*Endpoint, family v1.IPFamily) []*Endpoint {
	n := 0
	for _, ep := range eps {
		if FamilyOf(ep.IP) == family {
			n++
		}
	}
	if n == len(eps) {
		return eps
	}
	out := make([]*Endpoint, 0, n)
	for _, ep := range eps {
		if FamilyOf(ep.IP) == family {
			out = append(out, ep)
		}
	}
	return out
}
