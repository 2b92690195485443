package endpoints

// Regression tests for bugs found by review: IPv4-mapped source ranges, and slices
// whose service-name label changes or disappears.

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// An IPv4-mapped IPv6 source range is classified as IPv4 by FamilyOf but kept in its
// IPv6 spelling, so SourceRangesOf(IPv4) hands "::ffff:10.0.0.0/104" to the IPv4
// renderer, and iptables-restore rejects the whole table. ::ffff:0.0.0.0/96 also means
// "any IPv4 source" but is not treated as allow-any.
func TestServicePortsMappedSourceRange(t *testing.T) {
	svc := makeService("shop", "web", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerSourceRanges = []string{"::ffff:10.0.0.0/104", "192.168.0.0/24"}
	})
	ports, _ := ServicePorts(svc)
	if len(ports) != 1 {
		t.Fatalf("got %d ports", len(ports))
	}
	for _, r := range ports[0].SourceRangesOf(v1.IPv4Protocol) {
		if !r.Addr().Is4() {
			t.Errorf("SourceRangesOf(IPv4) holds %v, which is not an IPv4 prefix", r)
		}
	}
	if diff := cmp.Diff(prefixes("10.0.0.0/8", "192.168.0.0/24"), ports[0].SourceRangesOf(v1.IPv4Protocol), cmpOpts...); diff != "" {
		t.Errorf("IPv4 ranges (-want +got):\n%s", diff)
	}

	anyV4 := makeService("shop", "web", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerSourceRanges = []string{"::ffff:0.0.0.0/96", "192.168.0.0/24"}
	})
	ports, _ = ServicePorts(anyV4)
	if got := ports[0].SourceRangesOf(v1.IPv4Protocol); len(got) != 0 {
		t.Errorf("::ffff:0.0.0.0/96 allows any IPv4 source, but SourceRangesOf(IPv4) = %v", got)
	}
}

// A slice whose kubernetes.io/service-name label changes stays filed under the old
// Service too, so the old Service keeps its endpoints until the proxy restarts.
func TestTrackerSliceRelabelled(t *testing.T) {
	tr := NewTracker(thisNode)
	mustUpdateService(t, tr, makeService("shop", "web"))
	mustUpdateService(t, tr, makeService("shop", "api"))
	mustUpdateSlice(t, tr, makeSlice("shop", "web", "shared-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}))
	tr.Snapshot()

	mustUpdateSlice(t, tr, makeSlice("shop", "api", "shared-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}))
	snap := tr.Snapshot()
	if got := ips(snap.Endpoints[webHTTP]); len(got) != 0 {
		t.Errorf("shop/web still has endpoints %v from a slice relabelled to shop/api", got)
	}
	if got := ips(snap.Endpoints[apiHTTP]); !slices.Equal(got, []string{"10.244.1.5"}) {
		t.Errorf("shop/api endpoints = %v", got)
	}
	if _, ok := snap.Changed[webHTTP]; !ok {
		t.Errorf("shop/web not marked changed")
	}
}

// Removing the label (or deleting the slice through a tombstone whose last-known state has
// no label) leaves the old copy in place for good.
func TestTrackerSliceLabelRemoved(t *testing.T) {
	tr := NewTracker(thisNode)
	mustUpdateService(t, tr, makeService("shop", "web"))
	slice := makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")})
	mustUpdateSlice(t, tr, slice)
	tr.Snapshot()

	unlabelled := slice.DeepCopy()
	unlabelled.Labels = nil
	_ = tr.OnEndpointSliceUpdate(unlabelled) // reports the missing label
	tr.OnEndpointSliceDelete(unlabelled)
	if got := ips(tr.Snapshot().Endpoints[webHTTP]); len(got) != 0 {
		t.Errorf("shop/web keeps endpoints %v of a slice that lost its label and was deleted", got)
	}
}
