package node

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
)

// TestNodePortAddresses checks the keywords and CIDRs of --nodeport-addresses as
// kube-proxy v1.37 expands them (cmd/kube-proxy/app/server.go
// expandNodePortAddressKeywords) and applies them per family
// (pkg/proxy/util/nodeport_addresses.go): a family with no CIDR of its own, or with a
// zero CIDR, answers on every local address.
func TestNodePortAddresses(t *testing.T) {
	facts := Facts{IPs: []netip.Addr{
		netip.MustParseAddr("192.168.10.11"), netip.MustParseAddr("192.168.20.11"), netip.MustParseAddr("fd00:10::11"),
	}}
	type want struct {
		restrict bool
		ips      []string
		loopback bool
	}
	tests := []struct {
		name   string
		addrs  []string
		v4, v6 want
	}{
		{name: "empty: all", v4: want{loopback: true}},
		{name: "all", addrs: []string{"all"}, v4: want{loopback: true}},
		{name: "primary: first address of each family", addrs: []string{"primary"},
			v4: want{restrict: true, ips: []string{"192.168.10.11"}}, v6: want{restrict: true, ips: []string{"fd00:10::11"}}},
		{name: "localhost", addrs: []string{"localhost"},
			v4: want{restrict: true, ips: []string{"127.0.0.1"}, loopback: true}, v6: want{restrict: true, ips: []string{"::1"}}},
		{name: "IPv4 CIDR leaves IPv6 unrestricted", addrs: []string{"192.168.20.0/24"},
			v4: want{restrict: true, ips: []string{"192.168.20.11"}}},
		{name: "CIDR plus localhost", addrs: []string{"192.168.0.0/16", "localhost"},
			v4: want{restrict: true, ips: []string{"192.168.10.11", "192.168.20.11", "127.0.0.1"}, loopback: true}, v6: want{restrict: true, ips: []string{"::1"}}},
		{name: "a CIDR with no node address", addrs: []string{"10.9.0.0/16"}, v4: want{restrict: true}},
		{name: "zero CIDR among others wins", addrs: []string{"10.9.0.0/16", "0.0.0.0/0"}, v4: want{loopback: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configs := FamilyConfigs(facts, []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}, Options{NodePortAddresses: tt.addrs})
			for i, w := range []want{tt.v4, tt.v6} {
				c := configs[i]
				var ips []string
				for _, ip := range c.NodePortIPs {
					ips = append(ips, ip.String())
				}
				got := want{restrict: c.RestrictNodePorts, ips: ips, loopback: c.NodePortsOnLoopback}
				if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{}), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s (-want +got):\n%s", c.Family, diff)
				}
				if err := c.Validate(); err != nil {
					t.Errorf("%s: %v", c.Family, err)
				}
			}
			if got, want := NodePortsIncludeIPv4Loopback(tt.addrs), tt.v4.loopback; got != want {
				t.Errorf("NodePortsIncludeIPv4Loopback = %v, want %v", got, want)
			}
		})
	}
}

func TestValidateNodePortAddresses(t *testing.T) {
	tests := []struct {
		addrs   []string
		wantErr string
	}{
		{addrs: []string{"primary", "localhost", "all", "10.0.0.0/8", "fd00::/64"}},
		{addrs: []string{"primary", "primary"}, wantErr: `--nodeport-addresses[1]: duplicate value "primary"`},
		{addrs: []string{"Primary"}, wantErr: `--nodeport-addresses[0]: invalid value "Primary": must be a valid CIDR or one of the keywords 'primary', 'localhost', 'all'`},
		{addrs: []string{"10.0.0.1"}, wantErr: `--nodeport-addresses[0]: invalid value "10.0.0.1": must be a valid CIDR or one of the keywords 'primary', 'localhost', 'all'`},
	}
	for _, tt := range tests {
		err := ValidateNodePortAddresses("--nodeport-addresses", tt.addrs)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("%q: error %q, want %q", tt.addrs, got, tt.wantErr)
		}
	}
}
