package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/pkg/metrics"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	nfaccttest "github.com/switchyard-io/switchyard/pkg/nfacct/testing"
)

// TestNFAcctMetrics checks kube-proxy's two nfacct metrics are exported from the
// counters where the kernel has nfacct, and absent where it does not.
func TestNFAcctMetrics(t *testing.T) {
	acct := nfaccttest.NewFake()
	c := &Controller{cfg: Defaults(), metrics: metrics.New(), probeNFAcct: func() (nfacct.Interface, error) { return acct, nil }}
	c.setUpNFAcct(context.Background())
	for _, name := range []string{nfacct.CounterInvalidDropped, nfacct.CounterLocalhostNodePorts} {
		if err := acct.Ensure(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := acct.Count(nfacct.CounterInvalidDropped, 7, 700); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"kubeproxy_iptables_ct_state_invalid_dropped_packets_total":     7,
		"kubeproxy_iptables_localhost_nodeports_accepted_packets_total": 0,
	}
	if diff := cmp.Diff(want, nfacctSeries(t, c.metrics.Registry)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}

	without := &Controller{cfg: Defaults(), metrics: metrics.New(), probeNFAcct: func() (nfacct.Interface, error) { return nil, nfacct.ErrNotSupported }}
	without.setUpNFAcct(context.Background())
	if got := nfacctSeries(t, without.metrics.Registry); len(got) != 0 {
		t.Errorf("without nfacct: %v", got)
	}
	if without.nfacct != nil {
		t.Error("nfacct set without kernel support")
	}

	// IPVS mode writes no nfacct rules, so it neither probes nor exports them, as in
	// kube-proxy. mutation-checked: dropping the mode check in setUpNFAcct fails this.
	cfg := Defaults()
	cfg.Mode = "ipvs"
	ipvsMode := &Controller{cfg: cfg, metrics: metrics.New(), probeNFAcct: func() (nfacct.Interface, error) {
		t.Error("IPVS mode probed nfacct")
		return acct, nil
	}}
	ipvsMode.setUpNFAcct(context.Background())
	if got := nfacctSeries(t, ipvsMode.metrics.Registry); len(got) != 0 || ipvsMode.nfacct != nil {
		t.Errorf("IPVS mode: nfacct metrics %v, nfacct set %v; want none", got, ipvsMode.nfacct != nil)
	}
}

// nfacctSeries gathers the counters named kubeproxy_iptables_*_packets_total.
func nfacctSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "kubeproxy_iptables_") && strings.HasSuffix(f.GetName(), "_packets_total") {
			for _, m := range f.GetMetric() {
				out[f.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}
