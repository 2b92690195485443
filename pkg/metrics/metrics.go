// Package metrics defines Switchyard's Prometheus metrics. Where kube-proxy has a metric
// for the same thing, Switchyard uses its name (subsystem "kubeproxy"), so existing
// dashboards and alerts keep working; Switchyard's own additions use "switchyard".
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// Metrics holds every metric the daemon exports, registered on its own registry.
type Metrics struct {
	// Registry is where the metrics are registered; serve it on /metrics.
	Registry *prometheus.Registry

	// The kube-proxy metrics below carry kube-proxy v1.37's labels: ip_family on
	// everything a proxier of one family sets, so dual-stack nodes export both
	// families instead of one overwriting the other.
	SyncDuration             *prometheus.HistogramVec
	SyncFullDuration         *prometheus.HistogramVec
	SyncPartialDuration      *prometheus.HistogramVec
	NetworkProgramming       *prometheus.HistogramVec
	LastSyncTimestamp        *prometheus.GaugeVec
	LastQueuedTimestamp      *prometheus.GaugeVec
	RestoreFailures          *prometheus.CounterVec
	PartialRestoreFailures   *prometheus.CounterVec
	EndpointChanges          prometheus.Counter
	ServiceChanges           prometheus.Counter
	EndpointChangesPending   prometheus.Gauge
	ServiceChangesPending    prometheus.Gauge
	RulesTotal               *prometheus.GaugeVec
	RulesLast                *prometheus.GaugeVec
	NoLocalEndpoints         *prometheus.GaugeVec
	RestoreBytes             *prometheus.HistogramVec
	SyncsTotal               *prometheus.CounterVec
	Backend                  *prometheus.GaugeVec
	InvalidObjects           *prometheus.CounterVec
	ConntrackDeleted         *prometheus.CounterVec
	ConntrackCleanup         *prometheus.HistogramVec
	ConntrackRead            *prometheus.CounterVec
	IPVSOperations           *prometheus.CounterVec
	IPVSGracefulTerminations prometheus.Gauge
}

// networkProgrammingBuckets are kube-proxy's buckets: fine below a minute, coarse up
// to the 5-minute mark where the SLO's tail lives.
func networkProgrammingBuckets() []float64 {
	var b []float64
	b = append(b, prometheus.LinearBuckets(0.25, 0.25, 2)...)
	b = append(b, prometheus.LinearBuckets(1, 1, 59)...)
	b = append(b, prometheus.LinearBuckets(60, 5, 12)...)
	b = append(b, prometheus.LinearBuckets(300, 10, 30)...)
	return b
}

// syncBuckets cover 1 ms to about 16 s, as kube-proxy's sync histograms do.
var syncBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// New creates and registers every metric, plus the Go and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	hist := func(subsystem, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: subsystem, Name: name, Help: help, Buckets: buckets}, labels)
		m.Registry.MustRegister(h)
		return h
	}
	gauge := func(subsystem, name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Subsystem: subsystem, Name: name, Help: help})
		m.Registry.MustRegister(g)
		return g
	}
	counter := func(subsystem, name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Subsystem: subsystem, Name: name, Help: help})
		m.Registry.MustRegister(c)
		return c
	}
	gaugeVec := func(subsystem, name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: subsystem, Name: name, Help: help}, labels)
		m.Registry.MustRegister(g)
		return g
	}
	counterVec := func(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: subsystem, Name: name, Help: help}, labels)
		m.Registry.MustRegister(c)
		return c
	}

	const family = "ip_family"
	m.SyncDuration = hist("kubeproxy", "sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", syncBuckets, family)
	m.SyncFullDuration = hist("kubeproxy", "sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs", syncBuckets, family)
	m.SyncPartialDuration = hist("kubeproxy", "sync_partial_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for partial resyncs", syncBuckets, family)
	m.NetworkProgramming = hist("kubeproxy", "network_programming_duration_seconds", "In Cluster Network Programming Latency in seconds", networkProgrammingBuckets(), family)
	m.LastSyncTimestamp = gaugeVec("kubeproxy", "sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced", family)
	m.LastQueuedTimestamp = gaugeVec("kubeproxy", "sync_proxy_rules_last_queued_timestamp_seconds", "The last time a sync of proxy rules was queued", family)
	m.RestoreFailures = counterVec("kubeproxy", "sync_proxy_rules_iptables_restore_failures_total", "Cumulative proxy iptables restore failures", family)
	m.PartialRestoreFailures = counterVec("kubeproxy", "sync_proxy_rules_iptables_partial_restore_failures_total", "Cumulative proxy iptables partial restore failures", family)
	m.EndpointChanges = counter("kubeproxy", "sync_proxy_rules_endpoint_changes_total", "Cumulative proxy rules EndpointSlice changes")
	m.ServiceChanges = counter("kubeproxy", "sync_proxy_rules_service_changes_total", "Cumulative proxy rules Service changes")
	m.EndpointChangesPending = gauge("kubeproxy", "sync_proxy_rules_endpoint_changes_pending", "Pending proxy rules EndpointSlice changes")
	m.ServiceChangesPending = gauge("kubeproxy", "sync_proxy_rules_service_changes_pending", "Pending proxy rules Service changes")
	m.RulesTotal = gaugeVec("kubeproxy", "sync_proxy_rules_iptables_total", "Total number of iptables rules owned by the proxy", "table", family)
	m.RulesLast = gaugeVec("kubeproxy", "sync_proxy_rules_iptables_last", "Number of iptables rules written by the proxy in the last sync", "table", family)
	m.NoLocalEndpoints = gaugeVec("kubeproxy", "sync_proxy_rules_no_local_endpoints_total", "Number of services with a Local traffic policy and no endpoints", "traffic_policy", family)
	m.RestoreBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "switchyard", Name: "restore_payload_bytes", Help: "Size of iptables-restore payloads, by sync kind",
		Buckets: prometheus.ExponentialBuckets(256, 4, 12),
	}, []string{"sync"})
	m.Registry.MustRegister(m.RestoreBytes)
	m.SyncsTotal = counterVec("switchyard", "syncs_total", "Syncs by kind (full, partial) and result (success, error)", "sync", "result", family)
	m.Backend = gaugeVec("switchyard", "iptables_backend_info", "The iptables backend in use (value 1)", "backend", "reason")
	m.InvalidObjects = counterVec("switchyard", "invalid_objects_total", "Services and EndpointSlices that could not be fully programmed, once per object and problem, by kind and reason", "kind", "reason")
	// kube-proxy's conntrack reconciler metrics, same names, labels and buckets: one
	// observation per family after every applied sync, a skipped cleanup (no UDP
	// service changed) included, as kube-proxy cleans after every sync.
	m.ConntrackDeleted = counterVec("kubeproxy", "conntrack_reconciler_deleted_entries_total", "Cumulative conntrack flows deleted by conntrack reconciler", family)
	m.ConntrackCleanup = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "kubeproxy", Name: "conntrack_reconciler_sync_duration_seconds", Help: "ReconcileConntrackFlowsLatency latency in seconds",
		Buckets: syncBuckets,
	}, []string{family})
	m.Registry.MustRegister(m.ConntrackCleanup)
	m.ConntrackRead = counterVec("switchyard", "conntrack_entries_read_total", "Conntrack entries the kernel handed to the stale-flow cleanup (after its own filter)", family)
	m.IPVSOperations = counterVec("switchyard", "ipvs_operations_total", "IPVS netlink operations, by kind", "op")
	m.IPVSGracefulTerminations = gauge("switchyard", "ipvs_graceful_terminations", "Real servers at weight 0 waiting for their connections to end")

	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveSync records one sync of one family: its count by kind and result, and on
// success its duration under the overall and the per-kind histogram.
func (m *Metrics) ObserveSync(family string, full bool, d time.Duration, err error) {
	kind, result := proxy.SyncKind(full), "success"
	if err != nil {
		result = "error"
	}
	m.SyncsTotal.WithLabelValues(kind, result, family).Inc()
	if err != nil {
		return
	}
	m.SyncDuration.WithLabelValues(family).Observe(d.Seconds())
	if full {
		m.SyncFullDuration.WithLabelValues(family).Observe(d.Seconds())
	} else {
		m.SyncPartialDuration.WithLabelValues(family).Observe(d.Seconds())
	}
}

// SetRules records the iptables rules one family's sync wrote per table, and after a
// full sync the rules it owns per table. Tables a sync did not write are set to 0, so
// a partial sync that only touched nat does not leave filter's last figure behind.
func (m *Metrics) SetRules(family string, written, total map[string]int) {
	for _, table := range []string{"filter", "nat"} {
		m.RulesLast.WithLabelValues(table, family).Set(float64(written[table]))
		if total != nil {
			m.RulesTotal.WithLabelValues(table, family).Set(float64(total[table]))
		}
	}
}
