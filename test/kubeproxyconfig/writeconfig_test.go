// Package kubeproxyconfig checks Switchyard's configuration handling against the pinned
// kube-proxy v1.37.2 binary. It needs no root: kube-proxy --write-config-to writes its
// file and exits before it touches the kernel or the API server.
package kubeproxyconfig

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/kube-proxy/config/v1alpha1"

	"github.com/switchyard-io/switchyard/pkg/kubeproxyconfig"
	"github.com/switchyard-io/switchyard/test/testbed"
)

// onPurpose are the fields in which Switchyard's --write-config-to differs from
// kube-proxy's on purpose, with the reason. The test checks Switchyard's value of each
// separately.
var onPurpose = map[string]string{
	"iptables.localhostNodePorts": "Switchyard's flag default is false (CVE-2020-8558), kube-proxy's true; equal when the flag is given",
}

// TestWriteConfigDifferential runs, for a table of command lines, `switchyard
// --write-config-to` and `kube-proxy --write-config-to`, and compares the decoded
// configurations field by field; then kube-proxy must accept Switchyard's file as its
// --config (strictly: no lenient-decoding warning) and write it back unchanged.
// Mutation-checked: making --iptables-min-sync-period count in ipvs mode fails
// "ipvs ignores the iptables periods"; not lowercasing --hostname-override fails
// "iptables settings" and "config file wins".
func TestWriteConfigDifferential(t *testing.T) {
	kubeProxy, switchyard := tools(t)
	dir := t.TempDir()
	// A switchyard invoked through a link named kube-proxy, as the image ships it.
	link := kubeProxyLink(t, switchyard)
	configFile := filepath.Join(dir, "given.conf")
	if err := os.WriteFile(configFile, []byte("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nclusterCIDR: 10.244.0.0/16\nipvs:\n  scheduler: lc\n  syncPeriod: 10s\niptables:\n  localhostNodePorts: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"iptables settings", []string{"--cluster-cidr=10.244.0.0/16,fd00:244::/56", "--masquerade-all", "--nodeport-addresses=primary,10.0.0.0/8",
			"--iptables-masquerade-bit=13", "--iptables-sync-period=20s", "--iptables-min-sync-period=2s", "--hostname-override=Node-A",
			"--kubeconfig=/var/lib/kube-proxy/kubeconfig.conf", "--kube-api-qps=50", "--kube-api-burst=100", "--kube-api-content-type=application/json"}},
		{"ipvs", []string{"--proxy-mode=ipvs", "--ipvs-sync-period=10s", "--ipvs-min-sync-period=2s", "--iptables-min-sync-period=5s", "--ipvs-scheduler=lc",
			"--ipvs-strict-arp", "--ipvs-exclude-cidrs=10.0.0.0/8,fd00::/64", "--ipvs-tcp-timeout=1m", "--ipvs-tcpfin-timeout=10s", "--ipvs-udp-timeout=20s", "--masquerade-all"}},
		{"ipvs ignores the iptables periods", []string{"--proxy-mode=ipvs", "--iptables-sync-period=40s", "--iptables-min-sync-period=5s"}},
		{"servers", []string{"--bind-address=::", "--healthz-bind-address=[::1]:1234", "--metrics-bind-address=0.0.0.0:9999", "--bind-address-hard-fail",
			"--profiling", "--oom-score-adj=-500", "--config-sync-period=1m"}},
		// --show-hidden-metrics-for-version is left out: the pinned kube-proxy is built
		// without a version stamp, believes it is v0.0, and refuses 1.36.
		{"conntrack", []string{"--conntrack-max-per-core=0", "--conntrack-min=1000", "--conntrack-tcp-timeout-established=1h",
			"--conntrack-tcp-timeout-close-wait=10m", "--conntrack-tcp-be-liberal", "--conntrack-udp-timeout=30s", "--conntrack-udp-timeout-stream=2m"}},
		{"bridge", []string{"--detect-local-mode=BridgeInterface", "--pod-bridge-interface=cni0"}},
		{"interface prefix", []string{"--detect-local-mode=InterfaceNamePrefix", "--pod-interface-name-prefix=veth"}},
		{"node CIDR", []string{"--detect-local-mode=NodeCIDR", "--nodeport-addresses=localhost,all"}},
		{"logging and gates", []string{"--feature-gates=AllAlpha=false,ContextualLogging=true", "--v=3", "--vmodule=proxier=4", "--log-flush-frequency=2s"}},
		{"json logging", []string{"--logging-format=json", "--v=2"}},
		{"nftables", []string{"--proxy-mode=nftables", "--iptables-sync-period=15s"}},
		{"localhost node ports", []string{"--iptables-localhost-nodeports=true"}},
		{"config file wins", []string{"--config=" + configFile, "--hostname-override=Node-B", "--v=4", "--cluster-cidr=10.0.0.0/8", "--proxy-mode=iptables"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kpFile := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".kube-proxy.yaml")
			syFile := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".switchyard.yaml")
			runOK(t, kubeProxy, append(tc.args, "--write-config-to="+kpFile)...)
			runOK(t, link, append(tc.args, "--write-config-to="+syFile)...)
			kp, sy := decode(t, kpFile), decode(t, syFile)

			if diff := cmp.Diff(kp, sy, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(v1alpha1.KubeProxyIPTablesConfiguration{}, "LocalhostNodePorts")); diff != "" {
				t.Errorf("switchyard's configuration differs from kube-proxy's (-kube-proxy +switchyard):\n%s", diff)
			}
			// iptables.localhostNodePorts: see onPurpose.
			given := *kp.IPTables.LocalhostNodePorts
			if !slices.ContainsFunc(tc.args, func(a string) bool {
				return strings.HasPrefix(a, "--iptables-localhost-nodeports") || strings.HasPrefix(a, "--config=")
			}) {
				given = false
			}
			if *sy.IPTables.LocalhostNodePorts != given {
				t.Errorf("iptables.localhostNodePorts %v, want %v (%s)", *sy.IPTables.LocalhostNodePorts, given, onPurpose["iptables.localhostNodePorts"])
			}

			// kube-proxy accepts Switchyard's file strictly and reads it as written.
			back := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".back.yaml")
			output := runOK(t, kubeProxy, "--config="+syFile, "--write-config-to="+back)
			if strings.Contains(output, "lenient") {
				t.Errorf("kube-proxy needed lenient decoding for switchyard's file:\n%s", output)
			}
			if diff := cmp.Diff(sy, decode(t, back), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("kube-proxy read switchyard's file differently (-switchyard +kube-proxy):\n%s", diff)
			}
		})
	}
}

// tools returns the pinned kube-proxy and a freshly built switchyard, or skips the
// test when the pinned tools are not built.
func tools(t *testing.T) (kubeProxy, switchyard string) {
	t.Helper()
	bin, err := testbed.ToolsBinDir()
	if err != nil {
		t.Fatal(err)
	}
	kubeProxy = filepath.Join(bin, "kube-proxy")
	if _, err := os.Stat(kubeProxy); err != nil {
		t.Skipf("the pinned kube-proxy is not built (hack/build-tools.sh): %v", err)
	}
	switchyard, err = testbed.SwitchyardBinary()
	if err != nil {
		t.Fatal(err)
	}
	return kubeProxy, switchyard
}

// runOK runs a command that must succeed and returns its output.
func runOK(t *testing.T, argv0 string, args ...string) string {
	t.Helper()
	output, err := exec.Command(argv0, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(argv0), strings.Join(args, " "), err, output)
	}
	return string(output)
}

// decode reads a configuration file strictly.
func decode(t *testing.T, path string) *v1alpha1.KubeProxyConfiguration {
	t.Helper()
	cfg, warnings, err := kubeproxyconfig.Load(path)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%v %q", err, warnings)
	}
	return cfg
}
