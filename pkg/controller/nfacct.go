package controller

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/nfacct"
)

// probeNFAcct returns the kernel's nfacct subsystem, or an error where it has none.
func probeNFAcct() (nfacct.Interface, error) {
	n, err := nfacct.Probe()
	if err != nil {
		return nil, err
	}
	return n, nil
}

// setUpNFAcct probes the nfacct subsystem once at start (iptables mode only, as in
// kube-proxy) and, where it exists, exports kube-proxy's two counters. Where it does
// not, the rules are written without -m nfacct and the metrics are absent, as
// kube-proxy does ("nfacct based metrics won't be available").
func (c *Controller) setUpNFAcct(ctx context.Context) {
	if c.cfg.Mode != "iptables" || c.probeNFAcct == nil {
		return
	}
	logger := klog.FromContext(ctx)
	n, err := c.probeNFAcct()
	if err != nil {
		logger.Info("No nfacct support; nfacct based metrics won't be available", "reason", err.Error())
		return
	}
	c.nfacct = n
	c.metrics.Registry.MustRegister(&nfacctCollector{acct: n, logger: logger, counters: []nfacctMetric{
		{nfacct.CounterInvalidDropped, prometheus.NewDesc("kubeproxy_iptables_ct_state_invalid_dropped_packets_total",
			"packets dropped by iptables to work around conntrack problems", nil, nil)},
		{nfacct.CounterLocalhostNodePorts, prometheus.NewDesc("kubeproxy_iptables_localhost_nodeports_accepted_packets_total",
			"Number of packets accepted on nodeports of loopback interface", nil, nil)},
	}})
}

// nfacctMetric is one counter exported as a metric.
type nfacctMetric struct {
	counter string
	desc    *prometheus.Desc
}

// nfacctCollector reads the nfacct counters at each scrape.
type nfacctCollector struct {
	acct     nfacct.Interface
	logger   klog.Logger
	counters []nfacctMetric
}

// Describe implements prometheus.Collector.
func (n *nfacctCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range n.counters {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector. A counter that cannot be read (not created
// yet, or deleted by hand) is left out of the scrape.
func (n *nfacctCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range n.counters {
		c, err := n.acct.Get(m.counter)
		if err != nil {
			n.logger.V(4).Info("Cannot read nfacct counter", "counter", m.counter, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(c.Packets))
	}
}
