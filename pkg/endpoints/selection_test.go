package endpoints

// IP plan: see helpers_test.go. The node under test is node-a in zone-a; endpoint
// 10.244.1.x runs on node-a, 10.244.2.x on node-b (zone-b), 10.244.3.x on node-c (zone-a).

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func notReady(e *Endpoint)              { e.Ready, e.Serving, e.Terminating = false, false, false }
func servingTerminating(e *Endpoint)    { e.Ready, e.Serving, e.Terminating = false, true, true }
func terminatingNotServing(e *Endpoint) { e.Ready, e.Serving, e.Terminating = false, false, true }

func zoneHints(zones ...string) func(*Endpoint) {
	return func(e *Endpoint) { e.ZoneHints = zones }
}

func nodeHints(nodes ...string) func(*Endpoint) {
	return func(e *Endpoint) { e.NodeHints = nodes }
}

// ips renders endpoints as their addresses, nil for none.
func ips(eps []*Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.IP.String())
	}
	return out
}

var (
	clusterPort       = ServicePort{}
	internalLocalPort = ServicePort{InternalPolicyLocal: true}
	externalLocalPort = ServicePort{NodePort: 30080, ExternalPolicyLocal: true}
)

func TestSelect(t *testing.T) {
	node := NodeTopology{Name: thisNode, Zone: thisZone}
	tests := []struct {
		name          string
		port          ServicePort
		eps           []*Endpoint
		node          *NodeTopology // default node-a in zone-a
		wantCluster   []string
		wantLocal     []string
		wantReachable []string
		wantHasAny    bool
	}{
		{
			name:       "no endpoints",
			port:       clusterPort,
			wantHasAny: false,
		},
		{
			name:          "ready only",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a"), ep("10.244.2.1", "node-b"), ep("10.244.2.2", "node-b", notReady), ep("10.244.2.3", "node-b", servingTerminating)},
			wantCluster:   []string{"10.244.1.1", "10.244.2.1"},
			wantReachable: []string{"10.244.1.1", "10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:          "cluster falls back to serving-terminating",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", notReady), ep("10.244.2.1", "node-b", servingTerminating), ep("10.244.2.2", "node-b", terminatingNotServing)},
			wantCluster:   []string{"10.244.2.1"},
			wantReachable: []string{"10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:       "nothing usable: REJECT",
			port:       clusterPort,
			eps:        []*Endpoint{ep("10.244.1.1", "node-a", notReady), ep("10.244.2.2", "node-b", terminatingNotServing)},
			wantHasAny: false,
		},
		{
			name:          "internal Local: only this node's",
			port:          internalLocalPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a"), ep("10.244.2.1", "node-b")},
			wantLocal:     []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1"},
			wantHasAny:    true,
		},
		{
			name:       "internal Local without local endpoints: DROP, not REJECT",
			port:       internalLocalPort,
			eps:        []*Endpoint{ep("10.244.2.1", "node-b")},
			wantHasAny: true,
		},
		{
			name:          "internal Local falls back to local serving-terminating while remote ones are ready",
			port:          internalLocalPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", servingTerminating), ep("10.244.1.2", "node-a", terminatingNotServing), ep("10.244.2.1", "node-b")},
			wantLocal:     []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1"},
			wantHasAny:    true,
		},
		{
			name:          "internal Local prefers local ready over local terminating",
			port:          internalLocalPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", servingTerminating), ep("10.244.1.2", "node-a")},
			wantLocal:     []string{"10.244.1.2"},
			wantReachable: []string{"10.244.1.2"},
			wantHasAny:    true,
		},
		{
			name:          "external Local: cluster set for pods and the node, local set for outside",
			port:          externalLocalPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a"), ep("10.244.2.1", "node-b")},
			wantCluster:   []string{"10.244.1.1", "10.244.2.1"},
			wantLocal:     []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1", "10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:          "external Local: fallback decided separately for the two sets",
			port:          externalLocalPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", servingTerminating), ep("10.244.2.1", "node-b")},
			wantCluster:   []string{"10.244.2.1"},
			wantLocal:     []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1", "10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:          "external Local without local endpoints: cluster set only, DROP for outside",
			port:          externalLocalPort,
			eps:           []*Endpoint{ep("10.244.2.1", "node-b")},
			wantCluster:   []string{"10.244.2.1"},
			wantReachable: []string{"10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:       "external Local with nothing usable: REJECT",
			port:       externalLocalPort,
			eps:        []*Endpoint{ep("10.244.1.1", "node-a", notReady)},
			wantHasAny: false,
		},
		{
			name:          "zone hints on every endpoint: same zone only",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", zoneHints("zone-a")), ep("10.244.2.1", "node-b", zoneHints("zone-b")), ep("10.244.3.1", "node-c", zoneHints("zone-a"))},
			wantCluster:   []string{"10.244.1.1", "10.244.3.1"},
			wantReachable: []string{"10.244.1.1", "10.244.3.1"},
			wantHasAny:    true,
		},
		{
			name:          "zone hints on some endpoints: ignored",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", zoneHints("zone-a")), ep("10.244.2.1", "node-b")},
			wantCluster:   []string{"10.244.1.1", "10.244.2.1"},
			wantReachable: []string{"10.244.1.1", "10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:          "zone hints only on ready endpoints count",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", zoneHints("zone-a")), ep("10.244.2.1", "node-b", zoneHints("zone-b")), ep("10.244.2.2", "node-b", notReady)},
			wantCluster:   []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1"},
			wantHasAny:    true,
		},
		{
			name:          "zone hints none for this zone: ignored",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.2.1", "node-b", zoneHints("zone-b")), ep("10.244.2.2", "node-b", zoneHints("zone-c"))},
			wantCluster:   []string{"10.244.2.1", "10.244.2.2"},
			wantReachable: []string{"10.244.2.1", "10.244.2.2"},
			wantHasAny:    true,
		},
		{
			name:          "node without a zone label: zone hints ignored",
			port:          clusterPort,
			node:          &NodeTopology{Name: thisNode},
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", zoneHints("zone-a")), ep("10.244.2.1", "node-b", zoneHints("zone-b"))},
			wantCluster:   []string{"10.244.1.1", "10.244.2.1"},
			wantReachable: []string{"10.244.1.1", "10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:          "node without a zone label and an empty zone hint: still ignored",
			port:          clusterPort,
			node:          &NodeTopology{Name: thisNode},
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", zoneHints("")), ep("10.244.2.1", "node-b", zoneHints("zone-b"))},
			wantCluster:   []string{"10.244.1.1", "10.244.2.1"},
			wantReachable: []string{"10.244.1.1", "10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:          "node hints (PreferSameNode) win over zone hints",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", nodeHints("node-a"), zoneHints("zone-a")), ep("10.244.3.1", "node-c", nodeHints("node-c"), zoneHints("zone-a"))},
			wantCluster:   []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1"},
			wantHasAny:    true,
		},
		{
			name:          "node hints none for this node: zone hints apply",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.2.1", "node-b", nodeHints("node-b"), zoneHints("zone-b")), ep("10.244.3.1", "node-c", nodeHints("node-c"), zoneHints("zone-a"))},
			wantCluster:   []string{"10.244.3.1"},
			wantReachable: []string{"10.244.3.1"},
			wantHasAny:    true,
		},
		{
			name:          "node hints on some endpoints: ignored",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", nodeHints("node-a")), ep("10.244.2.1", "node-b")},
			wantCluster:   []string{"10.244.1.1", "10.244.2.1"},
			wantReachable: []string{"10.244.1.1", "10.244.2.1"},
			wantHasAny:    true,
		},
		{
			name:          "no ready endpoints: hints ignored, fallback to serving-terminating",
			port:          clusterPort,
			eps:           []*Endpoint{ep("10.244.2.1", "node-b", servingTerminating, zoneHints("zone-b")), ep("10.244.3.1", "node-c", servingTerminating, zoneHints("zone-a"))},
			wantCluster:   []string{"10.244.2.1", "10.244.3.1"},
			wantReachable: []string{"10.244.2.1", "10.244.3.1"},
			wantHasAny:    true,
		},
		{
			name:          "topology with external Local: reachable is the union",
			port:          externalLocalPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", zoneHints("zone-b")), ep("10.244.2.1", "node-b", zoneHints("zone-b")), ep("10.244.3.1", "node-c", zoneHints("zone-a"))},
			wantCluster:   []string{"10.244.3.1"},
			wantLocal:     []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1", "10.244.3.1"},
			wantHasAny:    true,
		},
		{
			name:          "internal Local ignores topology",
			port:          internalLocalPort,
			eps:           []*Endpoint{ep("10.244.1.1", "node-a", zoneHints("zone-b")), ep("10.244.2.1", "node-b", zoneHints("zone-b"))},
			wantLocal:     []string{"10.244.1.1"},
			wantReachable: []string{"10.244.1.1"},
			wantHasAny:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := node
			if tc.node != nil {
				n = *tc.node
			}
			port := tc.port
			got := Select(tc.eps, &port, n)
			if diff := cmp.Diff(tc.wantCluster, ips(got.Cluster)); diff != "" {
				t.Errorf("Cluster (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLocal, ips(got.Local)); diff != "" {
				t.Errorf("Local (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantReachable, ips(got.Reachable)); diff != "" {
				t.Errorf("Reachable (-want +got):\n%s", diff)
			}
			if got.HasAny != tc.wantHasAny {
				t.Errorf("HasAny = %v, want %v", got.HasAny, tc.wantHasAny)
			}
			// Reachable is always the sorted union of Cluster and Local.
			union := map[netip.Addr]bool{}
			for _, e := range append(append([]*Endpoint{}, got.Cluster...), got.Local...) {
				union[e.IP] = true
			}
			if len(union) != len(got.Reachable) {
				t.Errorf("Reachable %v is not the union of Cluster %v and Local %v", ips(got.Reachable), ips(got.Cluster), ips(got.Local))
			}
		})
	}
}
