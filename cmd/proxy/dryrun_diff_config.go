package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/pkg/kubeproxyconfig"
)

// applyConfigFile reads the daemon's KubeProxyConfiguration file exactly as the daemon
// does (kube-proxy's defaults, Switchyard's localhostNodePorts default, validation)
// and sets from it every dry-run option that the command line did not give, so that
// `dry-run --diff --config FILE` renders with the daemon's settings. It returns the
// file's warnings (settings accepted but not honoured).
func applyConfigFile(opts *dryRunOptions, ipvsOpts *ipvsDryRunOptions, diffOpts *diffDryRunOptions, path string, explicit func(flag string) bool) ([]string, error) {
	kp := kubeproxyconfig.NewOptions()
	fs := pflag.NewFlagSet("config", pflag.ContinueOnError)
	kp.AddFlags(fs)
	kp.ConfigFile = path
	resolved, err := kp.Complete(fs)
	if err != nil {
		return nil, err
	}
	cfg := resolved.Controller
	set := func(flag string, apply func()) {
		if !explicit(flag) {
			apply()
		}
	}
	set("mode", func() { opts.mode = cfg.Mode })
	set("cluster-cidr", func() {
		opts.clusterCIDRs = nil
		for _, p := range cfg.ClusterCIDRs {
			opts.clusterCIDRs = append(opts.clusterCIDRs, p.String())
		}
	})
	set("masquerade-all", func() { opts.masqueradeAll = cfg.MasqueradeAll })
	set("iptables-masquerade-bit", func() { opts.masqueradeBit = int(cfg.MasqueradeBit) })
	set("nodeport-addresses", func() { opts.nodePortCIDRs = append(stringList(nil), cfg.NodePortAddresses...) })
	set("iptables-localhost-nodeports", func() { opts.localhostPorts = cfg.LocalhostNodePorts })
	set("detect-local-mode", func() {
		if cfg.DetectLocal.Mode != "" {
			opts.detectLocalMode = cfg.DetectLocal.Mode
		}
	})
	set("pod-bridge-interface", func() { opts.bridgeInterface = cfg.DetectLocal.BridgeInterface })
	set("pod-interface-name-prefix", func() { opts.interfaceNamePrefix = cfg.DetectLocal.InterfaceNamePrefix })
	// The daemon sets nf_conntrack_tcp_be_liberal=1 when asked to, then renders as
	// the sysctl says; dry-run --diff reads the sysctl too.
	set("conntrack-tcp-be-liberal", func() { opts.tcpBeLiberal = opts.tcpBeLiberal || cfg.Conntrack.TCPBeLiberal })
	set("kubeconfig", func() {
		if cfg.Kubeconfig != "" && len(opts.files) == 0 {
			opts.kubeconfig = cfg.Kubeconfig
		}
	})
	set("node", func() { opts.nodeName = strings.ToLower(cfg.NodeName) })
	set("ipvs-scheduler", func() {
		if cfg.IPVS.Scheduler != "" {
			ipvsOpts.scheduler = cfg.IPVS.Scheduler
		}
	})
	set("ipvs-strict-arp", func() { ipvsOpts.strictARP = cfg.IPVS.StrictARP })
	set("ipvs-exclude-cidrs", func() { diffOpts.ipvsExcludeCIDRs = cfg.IPVS.ExcludeCIDRs })
	set("iptables-backend", func() {
		if cfg.IPTablesBackend != "" {
			diffOpts.backend = cfg.IPTablesBackend
		}
	})
	return resolved.Warnings, nil
}
