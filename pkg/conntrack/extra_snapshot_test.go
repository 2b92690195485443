package conntrack

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

func udpService(name, ip string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}},
	}
}

func udpSlice(service string, ips ...string) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: service + "-1", Labels: map[string]string{discovery.LabelServiceName: service}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{ip}})
	}
	return s
}

// TestStaleUDPAcrossExtraSnapshot checks the filter between the snapshot last applied
// and the current one when another snapshot was taken in between: an endpoint removed
// in the unsynced snapshot is still cleaned up, and UDP services that did not change
// are still left out (no full scan).
//
// Before the fix, NewStaleUDP looked only at next.Changed, so the removal in the
// unsynced snapshot was missed (and the controller, to avoid that, passed prev=nil
// and scanned every UDP service).
func TestStaleUDPAcrossExtraSnapshot(t *testing.T) {
	tr := endpoints.NewTracker("node1")
	for _, err := range []error{
		tr.OnServiceUpdate(udpService("dns", "172.30.0.10")), tr.OnEndpointSliceUpdate(udpSlice("dns", "10.180.0.1", "10.180.0.2")),
		tr.OnServiceUpdate(udpService("other", "172.30.0.12")), tr.OnEndpointSliceUpdate(udpSlice("other", "10.180.0.5")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	applied := tr.Snapshot()
	if err := tr.OnEndpointSliceUpdate(udpSlice("dns", "10.180.0.1")); err != nil {
		t.Fatal(err)
	}
	tr.Snapshot() // taken, never applied
	tr.OnServiceDelete(udpService("unrelated", "172.30.0.13"))
	next := tr.Snapshot()

	f := NewStaleUDP(applied, next, nil)
	for _, tc := range []struct {
		name string
		flow Flow
		want bool
	}{
		// mutation-checked: iterating next.Changed instead of ChangedSince fails this.
		{"flow to the endpoint removed in the unsynced snapshot", Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.2:53")}, true},
		{"flow to the endpoint kept", Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.10:53"), ReplySrc: ap("10.180.0.1:53")}, false},
		// mutation-checked: treating a generation gap as "unknown" (every UDP port)
		// fails this: an untranslated entry of an unchanged service is not touched.
		{"untranslated flow of an unchanged service", Flow{Protocol: v1.ProtocolUDP, OrigDst: ap("172.30.0.12:53"), ReplySrc: ap("172.30.0.12:53")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.Match(tc.flow); got != tc.want {
				t.Errorf("Match(%+v) = %v, want %v", tc.flow, got, tc.want)
			}
		})
	}
}
