package ipvs_test

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// trackedService and trackedSlice build API objects for tests that go through a real
// endpoints.Tracker (IP plan as above: services 10.96.0.0/16, pods 10.244.0.0/16).
func trackedService(name, clusterIP string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []v1.ServicePort{{Name: "p", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
}

func trackedSlice(service string, ips ...string) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: service + "-1", Labels: map[string]string{discovery.LabelServiceName: service}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("p"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{ip}, NodeName: ptr.To("node-b"),
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)}})
	}
	return s
}

// TestExtraSnapshotStaysPartial is the IPVS twin of the iptables test: a snapshot
// nobody syncs between two syncs must not force a full reconcile, and its changes
// must still be applied.
//
// Before the fix, the Proxier required snap.Generation == applied.Generation+1 and
// reconciled in full with reason "snapshot does not follow the applied one".
func TestExtraSnapshotStaysPartial(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	tr := endpoints.NewTracker("node-a")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.OnServiceUpdate(trackedService("web", "10.96.0.10")))
	must(tr.OnEndpointSliceUpdate(trackedSlice("web", "10.244.1.1")))
	if res, err := p.Sync(context.Background(), tr.Snapshot()); err != nil || !res.Full {
		t.Fatalf("first sync: full=%v err=%v, want full", res.Full, err)
	}

	must(tr.OnEndpointSliceUpdate(trackedSlice("web", "10.244.1.1", "10.244.1.2")))
	tr.Snapshot() // taken, never synced
	must(tr.OnServiceUpdate(trackedService("api", "10.96.0.11")))
	must(tr.OnEndpointSliceUpdate(trackedSlice("api", "10.244.1.3")))
	res, err := p.Sync(context.Background(), tr.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if res.Full {
		t.Fatalf("the sync after an extra snapshot was full (%s), want partial", res.Reason)
	}
	want := "-A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.244.1.1:8080 -m -w 1\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1\n" +
		"-A -t 10.96.0.11:80 -s rr\n-a -t 10.96.0.11:80 -r 10.244.1.3:8080 -m -w 1\n"
	if got := b.ipvs.Dump(); got != want {
		t.Errorf("IPVS after the partial sync:\n%s\nwant:\n%s", got, want)
	}
}
