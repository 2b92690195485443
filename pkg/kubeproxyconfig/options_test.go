package kubeproxyconfig

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/controller"
)

// complete parses args as the daemon does and resolves them.
func complete(t *testing.T, args ...string) (*Resolved, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts := NewOptions()
	opts.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return opts.Complete(fs)
}

// writeFile writes a configuration file and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.conf")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDefaultsFromNoFlags checks the controller configuration of a bare command line
// against kube-proxy's defaults.
// Mutation-checked: changing the default conntrack min (128k) in SetDefaults, or the
// iptables minSyncPeriod default (1s), fails this test.
func TestDefaultsFromNoFlags(t *testing.T) {
	r, err := complete(t)
	if err != nil {
		t.Fatal(err)
	}
	want := controller.Defaults()
	want.Mode = "iptables"
	want.BindAddress = "0.0.0.0"
	want.OOMScoreAdj = ptr.To[int32](-999)
	want.DetectLocal.Mode = "ClusterCIDR"
	want.IPTablesBackend = "auto"
	want.Conntrack = controller.ConntrackConfig{
		MaxPerCore: ptr.To[int32](32768), Min: ptr.To[int32](131072),
		TCPEstablishedTimeout: ptr.To(24 * time.Hour), TCPCloseWaitTimeout: ptr.To(time.Hour),
	}
	if diff := cmp.Diff(want, r.Controller); diff != "" {
		t.Errorf("controller config (-want +got):\n%s", diff)
	}
}

// TestComplete covers flags, the config file and their precedence.
// Mutation-checked: letting the flags count with --config (skipping the file)
// fails "config wins over flags"; dropping the hostname override fails "config
// wins over flags"; applying --iptables-sync-period in ipvs mode fails "iptables
// sync period does not count in ipvs mode".
func TestComplete(t *testing.T) {
	ipvsFile := header + "mode: ipvs\nclusterCIDR: 10.244.0.0/16\nhostnameOverride: fromfile\nipvs:\n  syncPeriod: 7s\n  scheduler: lc\niptables:\n  localhostNodePorts: true\n"
	for _, tc := range []struct {
		name         string
		args         []string
		file         string
		check        func(t *testing.T, r *Resolved)
		wantIgnored  []string
		wantWarnings []string
		wantNotices  []string
		wantErr      string
	}{
		{
			name: "kube-proxy flags",
			args: []string{"--kubeconfig=/k", "--master=https://api:6443", "--hostname-override=Node-A", "--cluster-cidr=10.244.0.0/16,fd00::/64",
				"--masquerade-all", "--nodeport-addresses=primary,10.0.0.0/8", "--iptables-masquerade-bit=13", "--iptables-sync-period=20s",
				"--iptables-min-sync-period=2s", "--kube-api-qps=50", "--kube-api-burst=100", "--kube-api-content-type=application/json",
				"--bind-address=::", "--healthz-bind-address=10.0.0.1:1234", "--metrics-bind-address=0.0.0.0:9999", "--bind-address-hard-fail",
				"--profiling", "--oom-score-adj=-500", "--config-sync-period=1m", "--conntrack-max-per-core=0", "--conntrack-tcp-be-liberal",
				"--conntrack-udp-timeout=30s", "--detect-local-mode=InterfaceNamePrefix", "--pod-interface-name-prefix=veth", "--init-only",
				"--iptables-localhost-nodeports"},
			check: func(t *testing.T, r *Resolved) {
				c := r.Controller
				got := []any{c.Kubeconfig, c.Client.Master, c.NodeName, c.ClusterCIDRs, c.MasqueradeAll, c.NodePortAddresses, c.MasqueradeBit,
					c.SyncPeriod, c.MinSyncPeriod, c.Client.QPS, c.Client.Burst, c.Client.ContentType, c.BindAddress, c.HealthzBindAddress,
					c.MetricsBindAddress, c.BindAddressHardFail, c.EnableProfiling, *c.OOMScoreAdj, c.ConfigSyncPeriod, *c.Conntrack.MaxPerCore,
					c.Conntrack.TCPBeLiberal, c.Conntrack.UDPTimeout, c.DetectLocal, c.InitOnly, c.LocalhostNodePorts}
				want := []any{"/k", "https://api:6443", "node-a", []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/64")},
					true, []string{"primary", "10.0.0.0/8"}, int32(13), 20 * time.Second, 2 * time.Second, float32(50), int32(100), "application/json",
					"::", "10.0.0.1:1234", "0.0.0.0:9999", true, true, int32(-500), time.Minute, int32(0), true, 30 * time.Second,
					controller.DetectLocalConfig{Mode: "InterfaceNamePrefix", InterfaceNamePrefix: "veth"}, true, true}
				if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			},
		},
		{
			// kube-proxy validates clusterCIDR only in ClusterCIDR mode and
			// ipvs.excludeCIDRs only in IPVS mode; elsewhere a stale bad value is unused.
			// Mutation-checked: returning the parse errors whatever the mode fails this case.
			name: "bad CIDRs in settings the mode does not use",
			file: header + "detectLocalMode: NodeCIDR\nclusterCIDR: 10.244.0.0/33\nipvs:\n  excludeCIDRs: [\"bad\"]\n",
			check: func(t *testing.T, r *Resolved) {
				if c := r.Controller; len(c.ClusterCIDRs) != 0 || len(c.IPVS.ExcludeCIDRs) != 0 || c.DetectLocal.Mode != "NodeCIDR" {
					t.Errorf("cluster CIDRs %v, exclude CIDRs %v, detect-local %q; want none, none, NodeCIDR", c.ClusterCIDRs, c.IPVS.ExcludeCIDRs, c.DetectLocal.Mode)
				}
			},
		},
		{
			name: "ipvs sync period",
			args: []string{"--proxy-mode=ipvs", "--ipvs-sync-period=10s", "--iptables-sync-period=20s", "--ipvs-min-sync-period=0s", "--ipvs-scheduler=wrr"},
			check: func(t *testing.T, r *Resolved) {
				if c := r.Controller; c.Mode != "ipvs" || c.SyncPeriod != 10*time.Second || c.MinSyncPeriod != 0 || c.IPVS.Scheduler != "wrr" {
					t.Errorf("mode %s sync %s min %s scheduler %s, want ipvs 10s 0s wrr", c.Mode, c.SyncPeriod, c.MinSyncPeriod, c.IPVS.Scheduler)
				}
				if r.KubeProxy.IPVS.SyncPeriod.Duration != 10*time.Second || r.KubeProxy.IPTables.SyncPeriod.Duration != 0 {
					t.Errorf("file form: ipvs.syncPeriod %s iptables.syncPeriod %s, want 10s and 0s", r.KubeProxy.IPVS.SyncPeriod, r.KubeProxy.IPTables.SyncPeriod)
				}
			},
		},
		{
			name: "iptables sync period does not count in ipvs mode",
			args: []string{"--proxy-mode=ipvs", "--iptables-sync-period=20s", "--iptables-min-sync-period=2s"},
			check: func(t *testing.T, r *Resolved) {
				if c := r.Controller; c.SyncPeriod != 30*time.Second || c.MinSyncPeriod != time.Second {
					t.Errorf("sync %s min %s, want kube-proxy's defaults 30s and 1s", c.SyncPeriod, c.MinSyncPeriod)
				}
			},
		},
		{
			name: "switchyard aliases",
			args: []string{"--mode=ipvs", "--sync-period=12s", "--min-sync-period=100ms", "--full-sync-period=0", "--iptables-backend=nft", "--healthz-timeout=1m"},
			check: func(t *testing.T, r *Resolved) {
				c := r.Controller
				if c.Mode != "ipvs" || c.SyncPeriod != 12*time.Second || c.MinSyncPeriod != 100*time.Millisecond || c.FullSyncPeriod != 0 || c.IPTablesBackend != "nft" || c.HealthTimeout != time.Minute {
					t.Errorf("got %+v", c)
				}
			},
			wantNotices: []string{"--iptables-localhost-nodeports is false"},
		},
		{
			name: "deprecated ports",
			args: []string{"--healthz-port=0", "--healthz-bind-address=10.0.0.1", "--metrics-bind-address=127.0.0.1", "--metrics-port=1234"},
			check: func(t *testing.T, r *Resolved) {
				if c := r.Controller; c.HealthzBindAddress != "" || c.MetricsBindAddress != "127.0.0.1:1234" {
					t.Errorf("healthz %q metrics %q, want off and 127.0.0.1:1234", c.HealthzBindAddress, c.MetricsBindAddress)
				}
			},
		},
		{
			name: "config wins over flags",
			file: ipvsFile,
			args: []string{"--cluster-cidr=10.0.0.0/8", "--proxy-mode=iptables", "--hostname-override=Node-B", "--v=4", "--masquerade-all", "--full-sync-period=5m", "--master=https://x"},
			check: func(t *testing.T, r *Resolved) {
				c := r.Controller
				if c.Mode != "ipvs" || c.ClusterCIDRs[0].String() != "10.244.0.0/16" || c.SyncPeriod != 7*time.Second || c.IPVS.Scheduler != "lc" || c.MasqueradeAll {
					t.Errorf("the file's settings were not used: %+v", c)
				}
				if c.NodeName != "node-b" || r.KubeProxy.Logging.Verbosity != 4 || c.FullSyncPeriod != 5*time.Minute || c.Client.Master != "https://x" {
					t.Errorf("the honoured flags were not used: node %q verbosity %d full sync %s master %q", c.NodeName, r.KubeProxy.Logging.Verbosity, c.FullSyncPeriod, c.Client.Master)
				}
				if !c.LocalhostNodePorts {
					t.Errorf("localhostNodePorts: true in the file was not honoured")
				}
			},
			wantIgnored: []string{"--cluster-cidr", "--masquerade-all", "--proxy-mode"},
		},
		{
			name: "config omits localhostNodePorts",
			file: header + "clusterCIDR: 10.244.0.0/16\n",
			check: func(t *testing.T, r *Resolved) {
				if r.Controller.LocalhostNodePorts || *r.KubeProxy.IPTables.LocalhostNodePorts {
					t.Errorf("localhost node ports on, want Switchyard's default off")
				}
				if r.Controller.Mode != "iptables" || r.Controller.MinSyncPeriod != time.Second {
					t.Errorf("mode %q min sync %s, want iptables 1s", r.Controller.Mode, r.Controller.MinSyncPeriod)
				}
			},
			wantNotices: []string{"does not set iptables.localhostNodePorts"},
		},
		{
			name: "config with null localhostNodePorts, as kubeadm writes it",
			file: header + "iptables:\n  localhostNodePorts: null\n  masqueradeBit: null\n",
			check: func(t *testing.T, r *Resolved) {
				if r.Controller.LocalhostNodePorts || r.Controller.MasqueradeBit != 14 {
					t.Errorf("localhost node ports %v masquerade bit %d, want false and 14", r.Controller.LocalhostNodePorts, r.Controller.MasqueradeBit)
				}
			},
			wantNotices: []string{"does not set iptables.localhostNodePorts"},
		},
		{
			name: "lenient with warning", file: header + "iptables:\n  localhostNodePorts: false\nfoo: 1\n",
			wantWarnings: []string{`unknown field "foo"`},
		},
		{
			name: "cannot honour", file: header + "mode: nftables\nportRange: 30000-31000\nwinkernel:\n  networkName: x\niptables:\n  localhostNodePorts: false\nfeatureGates:\n  AllAlpha: false\n",
			check: func(t *testing.T, r *Resolved) {
				if r.Controller.Mode != "nftables" || !cmp.Equal(r.Controller.NodePortAddresses, []string{"primary"}) {
					t.Errorf("mode %q node ports %q, want nftables and primary", r.Controller.Mode, r.Controller.NodePortAddresses)
				}
			},
			wantWarnings: []string{"winkernel", "portRange", "featureGates AllAlpha"},
		},
		{name: "kernelspace", file: header + "mode: kernelspace\n", wantErr: `mode: invalid value "kernelspace"`},
		{
			name: "nftables flag", args: []string{"--proxy-mode=nftables"},
			check: func(t *testing.T, r *Resolved) {
				if r.Controller.Mode != "nftables" || !cmp.Equal(r.Controller.NodePortAddresses, []string{"primary"}) {
					t.Errorf("mode %q node ports %q, want nftables and primary", r.Controller.Mode, r.Controller.NodePortAddresses)
				}
				if len(r.Notices) != 0 {
					t.Errorf("notices %q: the localhost node-port notice is about iptables mode", r.Notices)
				}
			},
		},
		{name: "bad mode flag", args: []string{"--proxy-mode=userspace"}, wantErr: `invalid flags: mode: invalid value "userspace"`},
		{name: "bad cluster CIDR", file: header + "clusterCIDR: 10.0.0.0/33\n", wantErr: `clusterCIDR[0]: invalid value "10.0.0.0/33"`},
		{name: "bad masquerade bit", args: []string{"--iptables-masquerade-bit=32"}, wantErr: "iptables.masqueradeBit: invalid value 32: must be within the range [0, 31]"},
		{name: "bad node port address", args: []string{"--nodeport-addresses=everywhere"}, wantErr: `nodePortAddresses[0]: invalid value "everywhere"`},
		{name: "min above max", args: []string{"--iptables-min-sync-period=1m"}, wantErr: "iptables.syncPeriod: invalid value 30s: must be greater than or equal to iptables.minSyncPeriod 1m0s"},
		{name: "bridge without interface", args: []string{"--detect-local-mode=BridgeInterface"}, wantErr: "detectLocal.bridgeInterface: must not be empty"},
		{name: "unknown gate flag", args: []string{"--feature-gates=NoSuchGate=true"}, wantErr: "--feature-gates: unrecognized feature gate: NoSuchGate"},
		{name: "unknown gate in file", file: header + "featureGates:\n  NoSuchGate: true\n", wantErr: "featureGates: unrecognized feature gate: NoSuchGate"},
		{name: "known gate", args: []string{"--feature-gates=AllAlpha=false,ContextualLogging=true"}, wantWarnings: []string{"featureGates AllAlpha: accepted"}},
		// GA and deprecated gates are accepted as kube-proxy v1.37.2 accepts them; a GA
		// gate against its lock and a gate without the gates it needs are refused.
		{name: "GA gate at its lock", args: []string{"--feature-gates=CPUManagerPolicyOptions=true"}, wantWarnings: []string{"featureGates CPUManagerPolicyOptions: accepted"}},
		{name: "GA gate against its lock", args: []string{"--feature-gates=CPUManagerPolicyOptions=false"}, wantErr: "cannot set feature gate CPUManagerPolicyOptions to false, feature is locked to true"},
		{name: "deprecated gate", file: header + "featureGates:\n  AllowDNSOnlyNodeCSR: true\n", wantWarnings: []string{"featureGates AllowDNSOnlyNodeCSR: accepted"}},
		// KubeProxyNFTablesLocalhostNodePorts changes nftables mode's table (localhost
		// node-port rejects), and nothing in the other modes, as in kube-proxy.
		// mutation-checked: leaving Controller.NFTablesLocalhostNodePorts off fails
		// "nftables localhost gate"; warning that the gate changes nothing in nftables
		// mode fails it too.
		{name: "nftables localhost gate", args: []string{"--proxy-mode=nftables", "--feature-gates=KubeProxyNFTablesLocalhostNodePorts=true"},
			check: func(t *testing.T, r *Resolved) {
				if !r.Controller.NFTablesLocalhostNodePorts || len(r.Warnings) != 0 {
					t.Errorf("gate %v, warnings %q: want on, none", r.Controller.NFTablesLocalhostNodePorts, r.Warnings)
				}
			}},
		{name: "nftables localhost gate with loopback node ports", args: []string{"--proxy-mode=nftables", "--nodeport-addresses=primary,localhost",
			"--feature-gates=KubeProxyNFTablesLocalhostNodePorts=true"}, wantWarnings: []string{"does not proxy them"}},
		{name: "nftables localhost gate in iptables mode", args: []string{"--feature-gates=KubeProxyNFTablesLocalhostNodePorts=true"},
			wantWarnings: []string{"featureGates KubeProxyNFTablesLocalhostNodePorts: accepted"}, check: func(t *testing.T, r *Resolved) {
				if r.Controller.NFTablesLocalhostNodePorts {
					t.Error("the gate is on in iptables mode")
				}
			}},
		{name: "gate others depend on", args: []string{"--feature-gates=AtomicFIFO=false"}, wantErr: "is enabled, but depends on features that are disabled: [AtomicFIFO]"},
		{name: "json logging", args: []string{"--logging-format=json"}, check: func(t *testing.T, r *Resolved) {
			if r.KubeProxy.Logging.Format != "json" {
				t.Errorf("logging format %q", r.KubeProxy.Logging.Format)
			}
		}},
		{name: "unknown logging format", args: []string{"--logging-format=xml"}, wantErr: `logging.format: Invalid value: "xml": Unsupported log format`},
		{name: "empty hostname override", args: []string{"--hostname-override= "}, wantErr: "--hostname-override: an empty name is invalid"},
		{name: "bare healthz IP with write-config-to", args: []string{"--write-config-to=/dev/null", "--healthz-bind-address=10.0.0.1"}, wantErr: `healthzBindAddress: invalid value "10.0.0.1": must be IP:port`},
		{name: "show hidden metrics", args: []string{"--show-hidden-metrics-for-version=1.30"}, wantErr: `showHiddenMetricsForVersion: invalid value "1.30"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config=" + writeFile(t, tc.file)}, args...)
			}
			r, err := complete(t, args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Complete: error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			if diff := cmp.Diff(tc.wantIgnored, r.IgnoredFlags); diff != "" {
				t.Errorf("ignored flags (-want +got):\n%s", diff)
			}
			containsAll(t, "warnings", r.Warnings, tc.wantWarnings)
			if tc.wantNotices != nil {
				containsAll(t, "notices", r.Notices, tc.wantNotices)
			}
		})
	}
}

// containsAll checks that got has one entry per want, in order, each containing it.
func containsAll(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s %q, want %d containing %q", what, got, len(want), want)
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] %q, want it to contain %q", what, i, got[i], want[i])
		}
	}
}
