package controller

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// IP plan: cluster IPs 172.30.0.0/16 and fd00:30::/64, pods 10.180.0.0/16 and
// fd00:180::/64, this node "node1", another node "node2".

// TestClassifyNoLocal pins which service ports count in kube-proxy's
// sync_proxy_rules_no_local_endpoints_total.
// Mutation-checked: dropping the usable-endpoint guard fails "no endpoints at all";
// dropping the OfFamily view fails "IPv4-only LB VIP, IPv6 family"; counting only
// Ready endpoints fails "only a remote serving-terminating endpoint".
func TestClassifyNoLocal(t *testing.T) {
	dual := []netip.Addr{netip.MustParseAddr("172.30.0.10"), netip.MustParseAddr("fd00:30::10")}
	remote := &endpoints.Endpoint{IP: netip.MustParseAddr("10.180.1.1"), NodeName: "node2", Ready: true, Serving: true}
	remote6 := &endpoints.Endpoint{IP: netip.MustParseAddr("fd00:180::1"), NodeName: "node2", Ready: true, Serving: true}
	local := &endpoints.Endpoint{IP: netip.MustParseAddr("10.180.0.1"), NodeName: "node1", Ready: true, Serving: true}
	remoteTerminating := &endpoints.Endpoint{IP: netip.MustParseAddr("10.180.1.2"), NodeName: "node2", Serving: true, Terminating: true}
	for _, tc := range []struct {
		name   string
		port   endpoints.ServicePort
		eps    []*endpoints.Endpoint
		family v1.IPFamily
		want   noLocal
	}{
		{"cluster policy", endpoints.ServicePort{ClusterIPs: dual}, []*endpoints.Endpoint{remote}, v1.IPv4Protocol, noLocal{}},
		{"internal Local, remote endpoint", endpoints.ServicePort{ClusterIPs: dual, InternalPolicyLocal: true}, []*endpoints.Endpoint{remote}, v1.IPv4Protocol, noLocal{internal: true}},
		{"internal Local, a local endpoint", endpoints.ServicePort{ClusterIPs: dual, InternalPolicyLocal: true}, []*endpoints.Endpoint{remote, local}, v1.IPv4Protocol, noLocal{}},
		{"no endpoints at all", endpoints.ServicePort{ClusterIPs: dual, InternalPolicyLocal: true}, nil, v1.IPv4Protocol, noLocal{}},
		{"only a remote serving-terminating endpoint", endpoints.ServicePort{ClusterIPs: dual, InternalPolicyLocal: true}, []*endpoints.Endpoint{remoteTerminating}, v1.IPv4Protocol, noLocal{internal: true}},
		{"external Local with a node port", endpoints.ServicePort{ClusterIPs: dual, NodePort: 30080, ExternalPolicyLocal: true}, []*endpoints.Endpoint{remote}, v1.IPv4Protocol, noLocal{external: true}},
		{"IPv4-only LB VIP, IPv4 family", endpoints.ServicePort{ClusterIPs: dual, ExternalPolicyLocal: true, LoadBalancerVIPs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}},
			[]*endpoints.Endpoint{remote, remote6}, v1.IPv4Protocol, noLocal{external: true}},
		{"IPv4-only LB VIP, IPv6 family", endpoints.ServicePort{ClusterIPs: dual, ExternalPolicyLocal: true, LoadBalancerVIPs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}},
			[]*endpoints.Endpoint{remote, remote6}, v1.IPv6Protocol, noLocal{}},
		{"endpoints of the other family only", endpoints.ServicePort{ClusterIPs: dual, InternalPolicyLocal: true}, []*endpoints.Endpoint{remote6}, v1.IPv4Protocol, noLocal{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyNoLocal(&tc.port, tc.eps, tc.family, "node1"); got != tc.want {
				t.Errorf("classifyNoLocal = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestNoLocalCountsFollowChanges checks that the counts kept up to date from each
// snapshot's changes equal a recount from scratch, over random changes through the
// real tracker, with extra snapshots nobody counted in between.
// Mutation-checked: updating only the changed set of the newest snapshot (s.Changed
// instead of ChangedSince) fails this test.
func TestNoLocalCountsFollowChanges(t *testing.T) {
	tracker := endpoints.NewTracker("node1")
	var counts noLocalCounts
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 200 {
		name := fmt.Sprintf("svc%d", rng.IntN(8))
		svc := testService(name, fmt.Sprintf("172.30.0.%d", 10+rng.IntN(8)))
		svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyType([]string{"Cluster", "Local"}[rng.IntN(2)]))
		switch rng.IntN(4) {
		case 0:
			tracker.OnServiceDelete(svc)
		case 1:
			if err := tracker.OnServiceUpdate(svc); err != nil {
				t.Fatal(err)
			}
		default:
			slice := testSlice(name, fmt.Sprintf("10.180.0.%d", 1+rng.IntN(3)))
			if rng.IntN(2) == 0 {
				slice.Endpoints[0].NodeName = ptr.To("node2")
			}
			if err := tracker.OnEndpointSliceUpdate(slice); err != nil {
				t.Fatal(err)
			}
		}
		snap := tracker.Snapshot()
		if rng.IntN(3) == 0 {
			continue // a snapshot nobody counted
		}
		internal, external := counts.update(snap, v1.IPv4Protocol, "node1")
		wantInternal, wantExternal := noLocalEndpoints(snap, v1.IPv4Protocol, "node1")
		if internal != wantInternal || external != wantExternal {
			t.Fatalf("step %d: kept counts %d/%d, recount %d/%d", step, internal, external, wantInternal, wantExternal)
		}
	}
}
