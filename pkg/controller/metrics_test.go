package controller

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/client-go/kubernetes/fake"

	conntracktest "github.com/switchyard-io/switchyard/pkg/conntrack/testing"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstest "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// kubeProxyMetrics are the kube-proxy v1.37.2 metrics Switchyard exports, with
// kube-proxy's type and label names (pkg/proxy/metrics/metrics.go). The e2e suite
// compares them with a running kube-proxy; this keeps the table honest without one.
var kubeProxyMetrics = map[string]struct {
	kind   string
	labels []string
}{
	"kubeproxy_sync_proxy_rules_duration_seconds":                        {"HISTOGRAM", []string{"ip_family"}},
	"kubeproxy_sync_full_proxy_rules_duration_seconds":                   {"HISTOGRAM", []string{"ip_family"}},
	"kubeproxy_sync_partial_proxy_rules_duration_seconds":                {"HISTOGRAM", []string{"ip_family"}},
	"kubeproxy_network_programming_duration_seconds":                     {"HISTOGRAM", []string{"ip_family"}},
	"kubeproxy_sync_proxy_rules_last_timestamp_seconds":                  {"GAUGE", []string{"ip_family"}},
	"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds":           {"GAUGE", []string{"ip_family"}},
	"kubeproxy_sync_proxy_rules_iptables_restore_failures_total":         {"COUNTER", []string{"ip_family"}},
	"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total": {"COUNTER", []string{"ip_family"}},
	"kubeproxy_sync_proxy_rules_endpoint_changes_total":                  {"COUNTER", nil},
	"kubeproxy_sync_proxy_rules_service_changes_total":                   {"COUNTER", nil},
	"kubeproxy_sync_proxy_rules_endpoint_changes_pending":                {"GAUGE", nil},
	"kubeproxy_sync_proxy_rules_service_changes_pending":                 {"GAUGE", nil},
	"kubeproxy_sync_proxy_rules_iptables_total":                          {"GAUGE", []string{"ip_family", "table"}},
	"kubeproxy_sync_proxy_rules_iptables_last":                           {"GAUGE", []string{"ip_family", "table"}},
	"kubeproxy_sync_proxy_rules_no_local_endpoints_total":                {"GAUGE", []string{"ip_family", "traffic_policy"}},
}

// dualStackNode is testNode with an IPv6 address too.
func dualStackNode() *v1.Node {
	n := testNode()
	n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: "fd00:192::2"})
	return n
}

// metricsController returns a controller over fake kernels for the given node, in
// the given mode, with its providers built.
func metricsController(t *testing.T, mode string, n *v1.Node) (*Controller, map[v1.IPFamily]*xtablestest.Fake, *ipvstest.IPVS) {
	t.Helper()
	cfg := Defaults()
	cfg.Mode = mode
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	c := newController(cfg, "node1", fake.NewClientset())
	kernels := map[v1.IPFamily]*xtablestest.Fake{v1.IPv4Protocol: xtablestest.NewFake(ruleset.IPv4), v1.IPv6Protocol: xtablestest.NewFake(ruleset.IPv6)}
	c.newIPTables = func(_ context.Context, family v1.IPFamily) (xtables.Interface, error) { return kernels[family], nil }
	vs := ipvstest.NewIPVS()
	c.ipvs.openKernel = func(_ context.Context, family v1.IPFamily) (ipvs.Kernel, error) {
		return ipvs.Kernel{IPVS: vs, Links: ipvstest.NewLinks(), IPSets: ipvstest.NewIPSets(), IPTables: kernels[family], Sysctl: ipvstest.NewSysctl()}, nil
	}
	c.conntrack = &conntracktest.Fake{}
	t.Cleanup(c.services.Close)
	facts, err := node.FromNode(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.buildProviders(context.Background(), facts); err != nil {
		t.Fatal(err)
	}
	return c, kernels, vs
}

// TestMetricsMatchKubeProxy checks that every kube-proxy metric Switchyard claims is
// exported with kube-proxy's type and label names once a dual-stack sync ran, and
// that per-family metrics have one series per family.
//
// Before the fix, the sync histograms, timestamps and restore failures had no
// ip_family label and iptables_total/last had only {table}, with "all" for last: a
// dual-stack node's second family overwrote the first.
func TestMetricsMatchKubeProxy(t *testing.T) {
	c, kernels, _ := metricsController(t, "iptables", dualStackNode())
	ctx := context.Background()
	local := testService("local", "172.30.0.30")
	local.Spec.InternalTrafficPolicy = ptrTo(v1.ServiceInternalTrafficPolicyLocal)
	remote := testSlice("local", "10.180.1.9")
	remote.Endpoints[0].NodeName = ptrTo("node2")
	c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
	c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
	c.serviceHandler(ctx).OnAdd(local, false)
	c.sliceHandler(ctx).OnAdd(remote, false)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A failed partial restore in IPv6, then its full retry.
	c.sliceHandler(ctx).OnUpdate(nil, testSlice("web", "10.180.0.1", "10.180.0.2"))
	c.serviceHandler(ctx).OnAdd(testService("web6", "fd00:30::10"), false)
	web6 := testSlice("web6", "fd00:180::1")
	web6.AddressType = discovery.AddressTypeIPv6
	c.sliceHandler(ctx).OnAdd(web6, false)
	kernels[v1.IPv6Protocol].FailNext("Restore", errInjected)
	if err := c.sync(ctx); err == nil {
		t.Fatal("the injected failure did not fail the sync")
	}
	// IPv4's sync was partial (one endpoint added: its chains and jumps in nat,
	// nothing in filter).
	if got := value(t, c.metrics.RulesLast.WithLabelValues("filter", "IPv4")); got != 0 {
		t.Errorf("iptables_last{filter,IPv4} = %v after a nat-only partial sync, want 0", got)
	}
	if got := value(t, c.metrics.RulesLast.WithLabelValues("nat", "IPv4")); got == 0 {
		t.Errorf("iptables_last{nat,IPv4} = 0 after a partial sync that wrote nat rules")
	}
	// IPv6 retries in full, then both families sync partially (nothing changed).
	for range 2 {
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}

	families, err := c.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range families {
		want, ok := kubeProxyMetrics[mf.GetName()]
		if !ok {
			continue
		}
		seen[mf.GetName()] = true
		if mf.GetType().String() != want.kind {
			t.Errorf("%s: type %v, want %v", mf.GetName(), mf.GetType(), want.kind)
		}
		ipFamilies := map[string]bool{}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
				if l.GetName() == "ip_family" {
					ipFamilies[l.GetValue()] = true
				}
			}
			slices.Sort(labels)
			if diff := cmp.Diff(want.labels, labels); diff != "" {
				t.Errorf("%s: label names (-kube-proxy +switchyard):\n%s", mf.GetName(), diff)
			}
		}
		if slices.Contains(want.labels, "ip_family") && !strings.Contains(mf.GetName(), "restore_failures") && len(ipFamilies) != 2 {
			t.Errorf("%s: series for families %v, want IPv4 and IPv6", mf.GetName(), ipFamilies)
		}
	}
	for name := range kubeProxyMetrics {
		if !seen[name] {
			t.Errorf("%s is not exported", name)
		}
	}

	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"restore failures IPv6", value(t, c.metrics.RestoreFailures.WithLabelValues("IPv6")), 1},
		{"partial restore failures IPv6", value(t, c.metrics.PartialRestoreFailures.WithLabelValues("IPv6")), 1},
		{"restore failures IPv4", value(t, c.metrics.RestoreFailures.WithLabelValues("IPv4")), 0},
		// ns/local has internalTrafficPolicy Local and only a remote endpoint (IPv4).
		{"no local endpoints, internal, IPv4", value(t, c.metrics.NoLocalEndpoints.WithLabelValues("internal", "IPv4")), 1},
		{"no local endpoints, external, IPv4", value(t, c.metrics.NoLocalEndpoints.WithLabelValues("external", "IPv4")), 0},
		{"pending service changes after the sync", value(t, c.metrics.ServiceChangesPending), 0},
		{"pending endpoint changes after the sync", value(t, c.metrics.EndpointChangesPending), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if got := value(t, c.metrics.RulesTotal.WithLabelValues("nat", "IPv6")); got == 0 {
		t.Errorf("after a full IPv6 sync iptables_total{nat,IPv6} = 0")
	}
	if v4, v6 := value(t, c.metrics.RulesTotal.WithLabelValues("filter", "IPv4")), value(t, c.metrics.RulesTotal.WithLabelValues("filter", "IPv6")); v4 == 0 || v6 == 0 {
		t.Errorf("iptables_total{filter} = %v (IPv4), %v (IPv6); want both families set", v4, v6)
	}
}

func ptrTo[T any](v T) *T { return &v }

// value reads a gauge's or counter's current value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetGauge().GetValue() + out.GetCounter().GetValue()
}

// seriesCount returns how many series a collector exports.
func seriesCount(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// TestPendingChangesMetrics checks kube-proxy's *_changes_pending gauges: the number
// of Services with changes not yet synced, set by the handlers and cleared by a sync.
// Before the fix they were registered and never set.
func TestPendingChangesMetrics(t *testing.T) {
	c, _, _ := metricsController(t, "iptables", testNode())
	ctx := context.Background()
	c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
	c.serviceHandler(ctx).OnAdd(testService("api", "172.30.0.11"), false)
	c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
	if got := value(t, c.metrics.ServiceChangesPending); got != 2 {
		t.Errorf("service changes pending = %v, want 2", got)
	}
	if got := value(t, c.metrics.EndpointChangesPending); got != 1 {
		t.Errorf("endpoint changes pending = %v, want 1", got)
	}
	if got := value(t, c.metrics.LastQueuedTimestamp.WithLabelValues("IPv4")); got == 0 {
		t.Error("last queued timestamp not set by a change")
	}
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s, e := value(t, c.metrics.ServiceChangesPending), value(t, c.metrics.EndpointChangesPending); s != 0 || e != 0 {
		t.Errorf("after the sync: pending services %v, endpoints %v; want 0, 0", s, e)
	}
	if got := seriesCount(t, c.metrics.NetworkProgramming); got != 1 {
		t.Errorf("network programming series = %d, want 1 (IPv4)", got)
	}
}

// TestGracefulTerminationsMetric checks switchyard_ipvs_graceful_terminations: the
// number of real servers draining at weight 0, set by each termination check. Before
// the fix it was registered and never set.
func TestGracefulTerminationsMetric(t *testing.T) {
	c, _, vs := metricsController(t, "ipvs", testNode())
	ctx := context.Background()
	c.serviceHandler(ctx).OnAdd(testService("web", "10.96.0.10"), false)
	c.sliceHandler(ctx).OnAdd(testSlice("web", "10.244.1.1", "10.244.1.2"), false)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	k := ipvs.Key{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: v1.ProtocolTCP}
	if err := vs.SetConnections(k, netip.MustParseAddrPort("10.244.1.2:8080"), 1, 0); err != nil {
		t.Fatal(err)
	}
	c.sliceHandler(ctx).OnUpdate(nil, testSlice("web", "10.244.1.1"))
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	c.checkTerminating(ctx)
	if got := value(t, c.metrics.IPVSGracefulTerminations); got != 1 {
		t.Errorf("graceful terminations with a live connection = %v, want 1", got)
	}
	if err := vs.SetConnections(k, netip.MustParseAddrPort("10.244.1.2:8080"), 0, 0); err != nil {
		t.Fatal(err)
	}
	c.checkTerminating(ctx)
	if got := value(t, c.metrics.IPVSGracefulTerminations); got != 0 {
		t.Errorf("graceful terminations once drained = %v, want 0", got)
	}
}
