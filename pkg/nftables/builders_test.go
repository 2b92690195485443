package nftables

// IP plan for the tests in this package:
//
//	cluster (pod) CIDR   10.0.0.0/8, fd00:10::/64
//	service CIDR         172.30.0.0/16, fd00:30::/108
//	this node            "node1", 192.168.0.2 and fd00:192::2, zone "zone-a"
//	other node           "node2", 192.168.0.3
//	pods on node1        10.180.0.0/24; pods on node2 10.180.1.0/24
//	external and LB IPs  203.0.113.0/24 (1.2.3.4 in places as kube-proxy's tests do)
//	outside client       198.51.100.7

import (
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
)

const (
	testNode      = "node1"
	otherNode     = "node2"
	testNodeIP    = "192.168.0.2"
	testNodeIPv6  = "fd00:192::2"
	testZone      = "zone-a"
	testClusterV4 = "10.0.0.0/8"
)

// testConfig returns the IPv4 Config of node1, with kube-proxy's test settings: node
// ports on 192.168.0.2 only, pods in 10.0.0.0/8, services in 172.30.0.0/16.
func testConfig() *Config {
	return &Config{FamilyConfig: node.FamilyConfig{
		Family:            v1.IPv4Protocol,
		Node:              endpoints.NodeTopology{Name: testNode, Zone: testZone},
		NodeIPs:           []netip.Addr{netip.MustParseAddr(testNodeIP)},
		Local:             node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix(testClusterV4)),
		RestrictNodePorts: true,
		NodePortIPs:       []netip.Addr{netip.MustParseAddr(testNodeIP)},
	}, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}}
}

// testConfigV6 returns the IPv6 Config of node1.
func testConfigV6() *Config {
	return &Config{FamilyConfig: node.FamilyConfig{
		Family:            v1.IPv6Protocol,
		Node:              endpoints.NodeTopology{Name: testNode, Zone: testZone},
		NodeIPs:           []netip.Addr{netip.MustParseAddr(testNodeIPv6)},
		Local:             node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("fd00:10::/64")),
		RestrictNodePorts: true,
		NodePortIPs:       []netip.Addr{netip.MustParseAddr(testNodeIPv6)},
	}, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("fd00:30::/108")}}
}

// makeService builds a ClusterIP Service with one TCP port "p80" (80 -> 8080) and lets
// tweaks change it.
func makeService(namespace, name, clusterIP string, tweaks ...func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeClusterIP,
			ClusterIP:  clusterIP,
			ClusterIPs: []string{clusterIP},
			Ports:      []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
	for _, tweak := range tweaks {
		tweak(svc)
	}
	return svc
}

// ep describes one endpoint for makeSlice.
type ep struct {
	ip          string
	node        string
	notReady    bool
	terminating bool
	notServing  bool
	zoneHints   []string
}

// makeSlice builds the EndpointSlice of a service with port "p80" on targetPort.
func makeSlice(namespace, service, name string, targetPort int32, eps ...ep) *discovery.EndpointSlice {
	slice := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{discovery.LabelServiceName: service},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To(targetPort), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, e := range eps {
		if netip.MustParseAddr(e.ip).Is6() {
			slice.AddressType = discovery.AddressTypeIPv6
		}
		de := discovery.Endpoint{
			Addresses: []string{e.ip},
			Conditions: discovery.EndpointConditions{
				Ready:       ptr.To(!e.notReady),
				Serving:     ptr.To(!e.notServing),
				Terminating: ptr.To(e.terminating),
			},
		}
		if e.node != "" {
			de.NodeName = ptr.To(e.node)
		}
		if e.zoneHints != nil {
			de.Hints = &discovery.EndpointHints{}
			for _, z := range e.zoneHints {
				de.Hints.ForZones = append(de.Hints.ForZones, discovery.ForZone{Name: z})
			}
		}
		slice.Endpoints = append(slice.Endpoints, de)
	}
	return slice
}

// snapshotOf feeds objects into a fresh tracker and returns its snapshot.
func snapshotOf(t testing.TB, objects ...any) *endpoints.Snapshot {
	t.Helper()
	tracker := endpoints.NewTracker(testNode)
	for _, obj := range objects {
		switch o := obj.(type) {
		case *v1.Service:
			if err := tracker.OnServiceUpdate(o); err != nil {
				t.Fatalf("service %s/%s: %v", o.Namespace, o.Name, err)
			}
		case *discovery.EndpointSlice:
			if err := tracker.OnEndpointSliceUpdate(o); err != nil {
				t.Fatalf("slice %s/%s: %v", o.Namespace, o.Name, err)
			}
		default:
			t.Fatalf("unexpected object %T", obj)
		}
	}
	return tracker.Snapshot()
}

func nsName(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}
