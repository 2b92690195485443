package node

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFromNode(t *testing.T) {
	tests := []struct {
		name    string
		addrs   []v1.NodeAddress
		want    []netip.Addr
		wantErr bool
	}{
		{
			name: "internal addresses of both families, hostname ignored",
			addrs: []v1.NodeAddress{
				{Type: v1.NodeHostName, Address: "node-a"},
				{Type: v1.NodeInternalIP, Address: "192.168.10.11"},
				{Type: v1.NodeExternalIP, Address: "203.0.113.11"},
				{Type: v1.NodeInternalIP, Address: "fd00:10::11"},
			},
			want: []netip.Addr{netip.MustParseAddr("192.168.10.11"), netip.MustParseAddr("fd00:10::11")},
		},
		{
			name:  "external address when there is no internal one",
			addrs: []v1.NodeAddress{{Type: v1.NodeExternalIP, Address: "203.0.113.11"}},
			want:  []netip.Addr{netip.MustParseAddr("203.0.113.11")},
		},
		{name: "no address yet", wantErr: true},
		{name: "garbage address", addrs: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.300"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &v1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{v1.LabelTopologyZone: "zone-1"}},
				Status:     v1.NodeStatus{Addresses: tt.addrs},
			}
			facts, err := FromNode(n)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, facts.IPs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("IPs (-want +got):\n%s", diff)
			}
			if facts.Zone != "zone-1" {
				t.Errorf("zone = %q, want zone-1", facts.Zone)
			}
		})
	}
}

// TestFromNodePodCIDRs checks spec.podCIDRs (and the single podCIDR of old Nodes) are
// read, and that a change of them makes the Facts differ, which rebuilds the proxiers.
func TestFromNodePodCIDRs(t *testing.T) {
	addrs := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "192.168.10.11"}}
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}, Status: v1.NodeStatus{Addresses: addrs},
		Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}}}
	facts, err := FromNode(n)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:244:1::/64")}
	if diff := cmp.Diff(want, facts.PodCIDRs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("PodCIDRs (-want +got):\n%s", diff)
	}
	old := n.DeepCopy()
	old.Spec.PodCIDRs = nil
	oldFacts, err := FromNode(old)
	if err != nil {
		t.Fatal(err)
	}
	if len(oldFacts.PodCIDRs) != 1 || oldFacts.PodCIDRs[0] != want[0] {
		t.Errorf("podCIDR only: PodCIDRs = %v", oldFacts.PodCIDRs)
	}
	if facts.Equal(oldFacts) {
		t.Error("Facts with different pod CIDRs are Equal")
	}
	if !facts.Equal(facts) {
		t.Error("Facts not Equal to themselves")
	}
	n.Spec.PodCIDRs = []string{"10.244.1.0/33"}
	if _, err := FromNode(n); err == nil {
		t.Error("a bad pod CIDR was accepted")
	}
}
