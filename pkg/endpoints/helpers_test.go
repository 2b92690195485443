package endpoints

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// IP plan shared by the tests of this package:
//
//	service CIDR   10.96.0.0/16, fd00:96::/112     cluster IPs 10.96.0.x, fd00:96::x
//	pod CIDR       10.244.0.0/16, fd00:244::/64    endpoints 10.244.<node>.x
//	node IPs       192.168.0.0/24                  node-a .11 (zone-a), node-b .12 (zone-b), node-c .13 (zone-a)
//	external IPs   203.0.113.0/24, 2001:db8::/64
//	LB ingress     198.51.100.0/24
//
// The node under test is node-a in zone-a unless a test says otherwise.
const (
	thisNode = "node-a"
	thisZone = "zone-a"
)

// cmpOpts compares the package's types, whose netip values have unexported fields.
var cmpOpts = []cmp.Option{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{})}

func ptr[T any](v T) *T { return &v }

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func nn(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func spn(ns, name, port string, protocol v1.Protocol) ServicePortName {
	return ServicePortName{NamespacedName: nn(ns, name), Port: port, Protocol: protocol}
}

// makeService returns a ClusterIP Service with cluster IP 10.96.0.10 and one TCP port
// "http" 80, changed by the tweaks.
func makeService(ns, name string, tweaks ...func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeClusterIP,
			ClusterIP:  "10.96.0.10",
			ClusterIPs: []string{"10.96.0.10"},
			Ports:      []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
	for _, tweak := range tweaks {
		tweak(svc)
	}
	return svc
}

// makeSlice returns an IPv4 EndpointSlice of the Service ns/svc with one TCP port
// "http" 8080 and the given endpoints, changed by the tweaks.
func makeSlice(ns, svc, name string, eps []discovery.Endpoint, tweaks ...func(*discovery.EndpointSlice)) *discovery.EndpointSlice {
	slice := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      name,
			Labels:    map[string]string{discovery.LabelServiceName: svc},
		},
		AddressType: discovery.AddressTypeIPv4,
		Endpoints:   eps,
		Ports: []discovery.EndpointPort{{
			Name: ptr("http"), Port: ptr[int32](8080), Protocol: ptr(v1.ProtocolTCP),
		}},
	}
	for _, tweak := range tweaks {
		tweak(slice)
	}
	return slice
}

// makeEndpoint returns a ready endpoint on the given node, changed by the tweaks.
func makeEndpoint(ip, node string, tweaks ...func(*discovery.Endpoint)) discovery.Endpoint {
	ep := discovery.Endpoint{Addresses: []string{ip}}
	if node != "" {
		ep.NodeName = ptr(node)
	}
	for _, tweak := range tweaks {
		tweak(&ep)
	}
	return ep
}

// terminating marks an endpoint terminating, still serving unless serving is false.
func terminating(serving bool) func(*discovery.Endpoint) {
	return func(ep *discovery.Endpoint) {
		ep.Conditions = discovery.EndpointConditions{Ready: ptr(false), Serving: ptr(serving), Terminating: ptr(true)}
	}
}

// ep returns a model endpoint for the Select tests: ready, serving, not terminating.
func ep(ip, node string, tweaks ...func(*Endpoint)) *Endpoint {
	e := &Endpoint{IP: netip.MustParseAddr(ip), Port: 8080, NodeName: node, Ready: true, Serving: true}
	for _, tweak := range tweaks {
		tweak(e)
	}
	return e
}

func mustServicePorts(t *testing.T, svc *v1.Service) []*ServicePort {
	t.Helper()
	ports, err := ServicePorts(svc)
	if err != nil {
		t.Fatalf("ServicePorts(%s/%s): %v", svc.Namespace, svc.Name, err)
	}
	return ports
}
