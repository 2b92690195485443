package kubeproxyconfig

import (
	"net/netip"
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestMetricsOnLoopbackByDefault pins where /metrics (and with it /debug/state and,
// with --profiling, /debug/pprof/) is served when nothing says otherwise: on loopback,
// as kube-proxy's default metricsBindAddress 127.0.0.1:10249 (pkg/proxy/apis/config/
// v1alpha1/defaults.go), following the family of the file's bindAddress. Only /healthz and
// /livez listen on every address by default, because load balancers probe them from
// outside the node. Profiling stays off unless asked. docs/security.md cites this test.
// Mutation-checked: changing metricsHost to "0.0.0.0" in SetDefaults fails "no flags"
// and "config file without the field"; changing "[::1]" to "[::]" there fails "IPv6
// bind address"; metricsBindAddress 0.0.0.0:10249 in manifests/deploy/configmap.yaml
// fails "manifest ConfigMap".
func TestMetricsOnLoopbackByDefault(t *testing.T) {
	manifest, err := os.ReadFile("../../manifests/deploy/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm v1.ConfigMap
	if err := yaml.UnmarshalStrict(manifest, &cm); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		args        []string
		wantMetrics string
		wantHealthz string
	}{
		{"no flags", nil, "127.0.0.1:10249", "0.0.0.0:10256"},
		{"IPv6 bind address", []string{"--config=" + writeFile(t, header+"bindAddress: \"::\"\n")}, "[::1]:10249", "[::]:10256"},
		{"config file without the field", []string{"--config=" + writeFile(t, header+"clusterCIDR: 10.244.0.0/16\n")}, "127.0.0.1:10249", "0.0.0.0:10256"},
		{"manifest ConfigMap", []string{"--config=" + writeFile(t, cm.Data["config.conf"])}, "127.0.0.1:10249", "0.0.0.0:10256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := complete(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			got := r.Controller
			if got.MetricsBindAddress != tc.wantMetrics || got.HealthzBindAddress != tc.wantHealthz {
				t.Errorf("metrics %q healthz %q, want %q %q", got.MetricsBindAddress, got.HealthzBindAddress, tc.wantMetrics, tc.wantHealthz)
			}
			if addr, err := netip.ParseAddrPort(got.MetricsBindAddress); err != nil || !addr.Addr().IsLoopback() {
				t.Errorf("metrics address %q is not a loopback address (%v)", got.MetricsBindAddress, err)
			}
			if got.EnableProfiling {
				t.Error("profiling is on by default, want off")
			}
		})
	}
}
