package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	conntracktest "github.com/switchyard-io/switchyard/pkg/conntrack/testing"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// lbLocal returns a dual-stack LoadBalancer Service with externalTrafficPolicy Local,
// health-check node port 32000 and two ports.
func lbLocal() *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lb"},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeLoadBalancer, ClusterIP: "172.30.0.20", ClusterIPs: []string{"172.30.0.20", "fd00:30::20"},
			IPFamilies:            []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol},
			ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal, HealthCheckNodePort: 32000,
			Ports: []v1.ServicePort{
				{Name: "http", Port: 80, NodePort: 30080, Protocol: v1.ProtocolTCP},
				{Name: "https", Port: 443, NodePort: 30443, Protocol: v1.ProtocolTCP},
			},
		},
	}
}

// lbSlice returns one family's slice of lb: each endpoint serves both ports.
func lbSlice(name string, family discovery.AddressType, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{discovery.LabelServiceName: "lb"}},
		AddressType: family,
		Ports: []discovery.EndpointPort{
			{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)},
			{Name: ptr.To("https"), Port: ptr.To(int32(8443)), Protocol: ptr.To(v1.ProtocolTCP)},
		},
		Endpoints: eps,
	}
}

func lbEndpoint(ip, node string, ready bool) discovery.Endpoint {
	return discovery.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(node),
		Conditions: discovery.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(!ready)}}
}

// TestHealthChecksCountDistinctEndpoints checks the count a health-check node port
// reports: kube-proxy counts distinct local ready endpoint IPs of the service (each
// family's proxier its own family), not endpoints summed over ports and families.
//
// Before the fix, the two pods below, each serving two ports in two families, were
// reported as 8 local endpoints.
func TestHealthChecksCountDistinctEndpoints(t *testing.T) {
	lb := types.NamespacedName{Namespace: "ns", Name: "lb"}
	for _, tc := range []struct {
		name string
		v4   []discovery.Endpoint
		v6   []discovery.Endpoint
		want int
	}{
		// mutation-checked: summing each port's local ready endpoints (the old code) gives 8.
		{"two pods, two families", []discovery.Endpoint{lbEndpoint("10.180.0.1", "node1", true), lbEndpoint("10.180.0.2", "node1", true),
			lbEndpoint("10.180.0.3", "node1", false), lbEndpoint("10.180.1.1", "node2", true)},
			[]discovery.Endpoint{lbEndpoint("fd00:180::1", "node1", true), lbEndpoint("fd00:180::2", "node1", true)}, 2},
		// The larger family decides, whichever it is. mutation-checked: counting only
		// IPv4 fails "more IPv6", only IPv6 fails "more IPv4".
		{"more IPv6", []discovery.Endpoint{lbEndpoint("10.180.0.1", "node1", true)},
			[]discovery.Endpoint{lbEndpoint("fd00:180::1", "node1", true), lbEndpoint("fd00:180::2", "node1", true), lbEndpoint("fd00:180::3", "node1", true)}, 3},
		{"more IPv4", []discovery.Endpoint{lbEndpoint("10.180.0.1", "node1", true), lbEndpoint("10.180.0.2", "node1", true), lbEndpoint("10.180.0.3", "node1", true)},
			[]discovery.Endpoint{lbEndpoint("fd00:180::1", "node1", true)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := endpoints.NewTracker("node1")
			for _, err := range []error{
				tr.OnServiceUpdate(lbLocal()),
				tr.OnEndpointSliceUpdate(lbSlice("lb-v4", discovery.AddressTypeIPv4, tc.v4...)),
				tr.OnEndpointSliceUpdate(lbSlice("lb-v6", discovery.AddressTypeIPv6, tc.v6...)),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			ports, ready := healthChecks(tr.Snapshot(), "node1")
			if diff := cmp.Diff(map[types.NamespacedName]int32{lb: 32000}, ports); diff != "" {
				t.Errorf("ports (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[types.NamespacedName]int{lb: tc.want}, ready); diff != "" {
				t.Errorf("local ready endpoints (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExtraSnapshotKeepsConntrackScoped checks the controller end to end: a snapshot
// taken between two syncs leaves the next sync partial, and since only a TCP service
// changed, the conntrack table is not read at all. Before the fix the controller
// treated the generation gap as "unknown" and scanned every UDP service, and the
// Proxier rewrote everything.
//
// mutation-checked: treating a generation gap in cleanConntrack as prev=nil fails it.
func TestExtraSnapshotKeepsConntrackScoped(t *testing.T) {
	c, kernel := syncedController(t)
	flows := &conntracktest.Fake{}
	c.conntrack = flows
	ctx := context.Background()
	dns := testService("dns", "172.30.0.53")
	dns.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}
	dnsSlice := testSlice("dns", "10.180.0.9")
	dnsSlice.Ports = []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}}
	c.serviceHandler(ctx).OnAdd(dns, false)
	c.sliceHandler(ctx).OnAdd(dnsSlice, false)
	c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
	c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitConntrack()
	scans := flows.Scans() // the first sync checks every UDP service
	if scans == 0 {
		t.Fatal("the first sync did not check the UDP services")
	}

	c.sliceHandler(ctx).OnUpdate(nil, testSlice("web", "10.180.0.1", "10.180.0.2"))
	c.tracker.Snapshot() // someone else's snapshot
	c.sliceHandler(ctx).OnUpdate(nil, testSlice("web", "10.180.0.2"))
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitConntrack()
	restores := kernel.Restores()
	if last := string(restores[len(restores)-1]); strings.Contains(last, ":KUBE-POSTROUTING") {
		t.Errorf("the sync after an extra snapshot was full:\n%s", last)
	}
	if got := flows.Scans() - scans; got != 0 {
		t.Errorf("a sync that changed only a TCP service read the conntrack table %d times, want 0", got)
	}
}
