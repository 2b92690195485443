// Package endpointstest builds the Services, EndpointSlices and snapshots that the
// tests of the rule renderers (pkg/iptables, pkg/nftables) start from, so that both
// modes are tested from the very same objects: a ClusterIP Service with one TCP port
// "p80" (80 → its slice's target port), and slices whose endpoints say only what a
// test varies.
package endpointstest

import (
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Service builds a ClusterIP Service with one TCP port "p80" (port 80) and lets tweaks
// change it.
func Service(namespace, name, clusterIP string, tweaks ...func(*v1.Service)) *v1.Service {
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

// Endpoint describes one endpoint of a Slice: ready and serving unless said otherwise.
type Endpoint struct {
	IP          string
	Node        string
	NotReady    bool
	Terminating bool
	NotServing  bool
	ZoneHints   []string
}

// Slice builds the EndpointSlice of a Service with port "p80" on targetPort; its
// address type is IPv6 when an endpoint's address is.
func Slice(namespace, service, name string, targetPort int32, eps ...Endpoint) *discovery.EndpointSlice {
	slice := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{discovery.LabelServiceName: service},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To(targetPort), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, e := range eps {
		if netip.MustParseAddr(e.IP).Is6() {
			slice.AddressType = discovery.AddressTypeIPv6
		}
		de := discovery.Endpoint{
			Addresses: []string{e.IP},
			Conditions: discovery.EndpointConditions{
				Ready:       ptr.To(!e.NotReady),
				Serving:     ptr.To(!e.NotServing),
				Terminating: ptr.To(e.Terminating),
			},
		}
		if e.Node != "" {
			de.NodeName = ptr.To(e.Node)
		}
		if e.ZoneHints != nil {
			de.Hints = &discovery.EndpointHints{}
			for _, z := range e.ZoneHints {
				de.Hints.ForZones = append(de.Hints.ForZones, discovery.ForZone{Name: z})
			}
		}
		slice.Endpoints = append(slice.Endpoints, de)
	}
	return slice
}

// Snapshot feeds objects (Services and EndpointSlices) into a fresh tracker of node
// and returns its snapshot; any other object, or one the tracker refuses, fails t.
func Snapshot(t testing.TB, node string, objects ...any) *endpoints.Snapshot {
	t.Helper()
	tracker := endpoints.NewTracker(node)
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
