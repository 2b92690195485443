package node

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// TestLocalDetector pins kube-proxy's exact iptables text for each detect-local mode
// (pkg/proxy/util/localdetector.go in v1.37.2). mutation-checked: dropping the "+" of
// the prefix mode, or writing "-i" where "! -i" belongs, fails this test.
func TestLocalDetector(t *testing.T) {
	tests := []struct {
		name               string
		d                  LocalDetector
		wantLocal, wantNot string
		wantNotImplemented bool
	}{
		{name: "cluster CIDR", d: DetectByCIDR(LocalModeClusterCIDR, netip.MustParsePrefix("10.244.0.0/16")),
			wantLocal: "-s 10.244.0.0/16", wantNot: "! -s 10.244.0.0/16"},
		{name: "node CIDR, masked", d: DetectByCIDR(LocalModeNodeCIDR, netip.MustParsePrefix("10.244.1.7/24")),
			wantLocal: "-s 10.244.1.0/24", wantNot: "! -s 10.244.1.0/24"},
		{name: "bridge", d: LocalDetector{Mode: LocalModeBridgeInterface, Interface: "sy-br"},
			wantLocal: "-i sy-br", wantNot: "! -i sy-br"},
		{name: "interface prefix", d: LocalDetector{Mode: LocalModeInterfaceNamePrefix, Interface: "veth"},
			wantLocal: "-i veth+", wantNot: "! -i veth+"},
		{name: "no CIDR of the family: no-op", d: DetectByCIDR(LocalModeNodeCIDR, netip.Prefix{}), wantNotImplemented: true},
		{name: "zero value: no-op", wantNotImplemented: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Implemented(); got == tt.wantNotImplemented {
				t.Fatalf("Implemented() = %v", got)
			}
			if diff := cmp.Diff(tt.wantLocal, strings.Join(tt.d.IfLocal(), " ")); diff != "" {
				t.Errorf("IfLocal (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantNot, strings.Join(tt.d.IfNotLocal(), " ")); diff != "" {
				t.Errorf("IfNotLocal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLocalMode(t *testing.T) {
	for _, s := range []string{"", "ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"} {
		if _, err := ParseLocalMode(s); err != nil {
			t.Errorf("ParseLocalMode(%q): %v", s, err)
		}
	}
	for _, s := range []string{"clustercidr", "Bridge", "PodCIDR"} {
		if _, err := ParseLocalMode(s); err == nil {
			t.Errorf("ParseLocalMode(%q) accepted", s)
		}
	}
}

// TestFamilyConfigsDetectors checks that each family gets kube-proxy's detector: the
// first CIDR of the family for the CIDR modes (the Node's podCIDRs for NodeCIDR), none
// without one, and the same interface for both families in the interface modes.
func TestFamilyConfigsDetectors(t *testing.T) {
	facts := Facts{
		Name:     "node-a",
		IPs:      []netip.Addr{netip.MustParseAddr("192.168.10.11"), netip.MustParseAddr("fd00:10::11")},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.3.0/24")},
	}
	families := []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
	tests := []struct {
		name string
		opts Options
		want []string // IfNotLocal per family
	}{
		{name: "ClusterCIDR (default)", opts: Options{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/56")}},
			want: []string{"! -s 10.244.0.0/16", "! -s fd00:244::/56"}},
		{name: "NodeCIDR: IPv4 podCIDR only", opts: Options{DetectLocalMode: LocalModeNodeCIDR, ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}},
			want: []string{"! -s 10.244.3.0/24", ""}},
		{name: "BridgeInterface", opts: Options{DetectLocalMode: LocalModeBridgeInterface, BridgeInterface: "cbr0"},
			want: []string{"! -i cbr0", "! -i cbr0"}},
		{name: "InterfaceNamePrefix", opts: Options{DetectLocalMode: LocalModeInterfaceNamePrefix, InterfaceNamePrefix: "cali"},
			want: []string{"! -i cali+", "! -i cali+"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range FamilyConfigs(facts, families, tt.opts) {
				got = append(got, strings.Join(c.Local.IfNotLocal(), " "))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("IfNotLocal per family (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMark checks the masquerade mark is 1<<bit, and zero means kube-proxy's default.
func TestMark(t *testing.T) {
	for _, tt := range []struct {
		bit  int32
		want string
	}{{14, "0x4000"}, {0, "0x1"}, {31, "0x80000000"}, {5, "0x20"}} {
		c := FamilyConfigs(Facts{IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}, []v1.IPFamily{v1.IPv4Protocol}, Options{MasqueradeBit: tt.bit})[0]
		if got := c.Mark(); got != tt.want {
			t.Errorf("bit %d: Mark() = %s, want %s", tt.bit, got, tt.want)
		}
	}
	if got := (&FamilyConfig{}).Mark(); got != "0x4000" {
		t.Errorf("zero FamilyConfig: Mark() = %s, want 0x4000", got)
	}
}
