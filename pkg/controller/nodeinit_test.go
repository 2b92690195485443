package controller

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	sysctltest "github.com/switchyard-io/switchyard/pkg/sysctl/testing"
)

// fakeNodeKernel returns a nodeKernel over fakes at a 5.x kernel's defaults, with 4
// CPUs; prepare may change them.
func fakeNodeKernel(prepare func(proc, module *sysctltest.Fake)) nodeKernel {
	proc := sysctltest.NewFake(map[string]int{
		conntrack.SysctlMax:                   65536,
		conntrack.SysctlTCPTimeoutEstablished: 432000,
		conntrack.SysctlTCPTimeoutCloseWait:   60,
		conntrack.SysctlTCPBeLiberal:          0,
		conntrack.SysctlUDPTimeout:            30,
		conntrack.SysctlUDPTimeoutStream:      120,
		sysctlRouteLocalnet:                   0,
	})
	module := sysctltest.NewFake(map[string]int{conntrack.ParamHashsize: 16384})
	if prepare != nil {
		prepare(proc, module)
	}
	return nodeKernel{procSys: proc, conntrackModule: module, cpus: 4}
}

// TestInitNode checks what initNode writes for kube-proxy's settings. mutation-checked:
// setting route_localnet whenever LocalhostNodePorts is on (ignoring
// --nodeport-addresses) fails "localhost node ports asked for but primary only".
func TestInitNode(t *testing.T) {
	tests := []struct {
		name        string
		tweak       func(*Config)
		prepare     func(proc, module *sysctltest.Fake)
		wantWrites  []string
		wantLiberal bool
		wantErr     string
	}{
		{name: "defaults write nothing"},
		{
			name: "kube-proxy's conntrack defaults",
			tweak: func(c *Config) {
				c.Conntrack.MaxPerCore, c.Conntrack.Min = ptr.To[int32](32768), ptr.To[int32](131072)
				c.Conntrack.TCPEstablishedTimeout, c.Conntrack.TCPCloseWaitTimeout = ptr.To(24*time.Hour), ptr.To(time.Hour)
			},
			wantWrites: []string{
				"net/netfilter/nf_conntrack_max=131072",
				"net/netfilter/nf_conntrack_tcp_timeout_established=86400",
				"net/netfilter/nf_conntrack_tcp_timeout_close_wait=3600",
				"hashsize=32768",
			},
		},
		{
			name:        "tcp be liberal: written and reported",
			tweak:       func(c *Config) { c.Conntrack.TCPBeLiberal = true },
			wantWrites:  []string{"net/netfilter/nf_conntrack_tcp_be_liberal=1"},
			wantLiberal: true,
		},
		{
			name:        "tcp be liberal set by someone else is reported too",
			prepare:     func(proc, _ *sysctltest.Fake) { _ = proc.Set(conntrack.SysctlTCPBeLiberal, 1) },
			wantWrites:  []string{"net/netfilter/nf_conntrack_tcp_be_liberal=1"}, // the prepare step's
			wantLiberal: true,
		},
		{
			name:       "localhost node ports on: route_localnet",
			tweak:      func(c *Config) { c.LocalhostNodePorts = true },
			wantWrites: []string{"net/ipv4/conf/all/route_localnet=1"},
		},
		{
			name:       "localhost node ports on with the localhost keyword",
			tweak:      func(c *Config) { c.LocalhostNodePorts, c.NodePortAddresses = true, []string{"primary", "localhost"} },
			wantWrites: []string{"net/ipv4/conf/all/route_localnet=1"},
		},
		{
			name:  "localhost node ports asked for but primary only",
			tweak: func(c *Config) { c.LocalhostNodePorts, c.NodePortAddresses = true, []string{"primary"} },
		},
		{
			name:  "localhost node ports asked for in IPVS mode",
			tweak: func(c *Config) { c.LocalhostNodePorts, c.Mode = true, "ipvs" },
		},
		{
			name: "nf_conntrack_max read-only in a non-initial namespace is fatal, as in kube-proxy",
			tweak: func(c *Config) {
				c.Conntrack.MaxPerCore, c.Conntrack.Min = ptr.To[int32](32768), ptr.To[int32](131072)
			},
			prepare: func(proc, _ *sysctltest.Fake) { proc.SetReadOnly(conntrack.SysctlMax, syscall.EACCES) },
			wantErr: "could not set conntrack parameters",
		},
		{
			name: "read-only /sys is fatal, as in kube-proxy",
			tweak: func(c *Config) {
				c.Conntrack.MaxPerCore, c.Conntrack.Min = ptr.To[int32](32768), ptr.To[int32](131072)
			},
			prepare:    func(_, module *sysctltest.Fake) { module.SetReadOnly(conntrack.ParamHashsize, syscall.EROFS) },
			wantWrites: []string{"net/netfilter/nf_conntrack_max=131072"},
			wantErr:    "read-only in this container or network namespace",
		},
		{
			name:  "per core 0 leaves a read-only max alone",
			tweak: func(c *Config) { c.Conntrack.MaxPerCore, c.Conntrack.Min = ptr.To[int32](0), ptr.To[int32](131072) },
			prepare: func(proc, module *sysctltest.Fake) {
				proc.SetReadOnly(conntrack.SysctlMax, syscall.EACCES)
				module.SetReadOnly(conntrack.ParamHashsize, syscall.EROFS)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Defaults()
			if tt.tweak != nil {
				tt.tweak(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			kernel := fakeNodeKernel(tt.prepare)
			state, err := initNode(context.Background(), &cfg, kernel)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			got := append(kernel.procSys.(*sysctltest.Fake).Writes(), kernel.conntrackModule.(*sysctltest.Fake).Writes()...)
			if diff := cmp.Diff(tt.wantWrites, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if state.TCPBeLiberal != tt.wantLiberal {
				t.Errorf("TCPBeLiberal = %v, want %v", state.TCPBeLiberal, tt.wantLiberal)
			}
		})
	}
}

// TestRunInitOnly checks that --init-only applies the node settings and returns
// without programming any rule or waiting for the API server.
func TestRunInitOnly(t *testing.T) {
	cfg := Defaults()
	cfg.InitOnly = true
	cfg.Conntrack.TCPBeLiberal = true
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	c := newController(cfg, "node1", fake.NewClientset())
	c.kernel = fakeNodeKernel(nil)
	c.newIPTables = nil // any use would panic: nothing may be programmed
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := c.kernel.procSys.(*sysctltest.Fake).Writes(); !cmp.Equal(got, []string{"net/netfilter/nf_conntrack_tcp_be_liberal=1"}) {
		t.Errorf("writes = %v", got)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("Run waited for the deadline")
	}
}

// TestValidateDatapath checks the errors for the settings this file covers.
func TestValidateDatapath(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{name: "bit too large", tweak: func(c *Config) { c.MasqueradeBit = 32 }, want: "--iptables-masquerade-bit 32: must be within [0, 31]"},
		{name: "bit negative", tweak: func(c *Config) { c.MasqueradeBit = -1 }, want: "--iptables-masquerade-bit -1: must be within [0, 31]"},
		{name: "unknown mode", tweak: func(c *Config) { c.DetectLocal.Mode = "PodCIDR" }, want: `--detect-local-mode "PodCIDR": want ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix`},
		{name: "bridge without name", tweak: func(c *Config) { c.DetectLocal.Mode = "BridgeInterface" }, want: "--detect-local-mode BridgeInterface needs --pod-bridge-interface"},
		{name: "prefix without prefix", tweak: func(c *Config) { c.DetectLocal.Mode = "InterfaceNamePrefix" }, want: "--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix"},
		{name: "bad node-port address", tweak: func(c *Config) { c.NodePortAddresses = []string{"primary", "eth0"} },
			want: `--nodeport-addresses[1]: invalid value "eth0": must be a valid CIDR or one of the keywords 'primary', 'localhost', 'all'`},
		{name: "negative conntrack min", tweak: func(c *Config) { c.Conntrack.Min = ptr.To[int32](-1) }, want: "--conntrack-min -1: must be greater than or equal to 0"},
		{name: "negative udp timeout", tweak: func(c *Config) { c.Conntrack.UDPTimeout = -time.Second }, want: "--conntrack-udp-timeout -1s: must be greater than or equal to 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Defaults()
			tt.tweak(&cfg)
			err := cfg.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	ok := Defaults()
	ok.DetectLocal = DetectLocalConfig{Mode: "InterfaceNamePrefix", InterfaceNamePrefix: "veth"}
	ok.NodePortAddresses = []string{"primary", "localhost", "10.0.0.0/8"}
	ok.MasqueradeBit = 0
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
