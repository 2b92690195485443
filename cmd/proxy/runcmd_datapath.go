package main

import (
	"flag"
	"time"

	"github.com/switchyard-io/switchyard/pkg/controller"
)

// registerDatapathFlags adds kube-proxy's flags for local-traffic detection, the
// masquerade bit, conntrack and --init-only to `switchyard run`, with kube-proxy's
// names. Unlike kube-proxy, conntrack is left alone unless a flag asks (the
// KubeProxyConfiguration path applies kube-proxy's defaults).
func registerDatapathFlags(fs *flag.FlagSet, cfg *controller.Config) {
	fs.StringVar(&cfg.DetectLocal.Mode, "detect-local-mode", "", "how pod traffic is told apart: ClusterCIDR (default), NodeCIDR, BridgeInterface or InterfaceNamePrefix")
	fs.StringVar(&cfg.DetectLocal.BridgeInterface, "pod-bridge-interface", "", "the pods' bridge, for --detect-local-mode BridgeInterface")
	fs.StringVar(&cfg.DetectLocal.InterfaceNamePrefix, "pod-interface-name-prefix", "", "the prefix of the pods' interfaces, for --detect-local-mode InterfaceNamePrefix")
	fs.Func("iptables-masquerade-bit", "the fwmark bit (0-31) that marks packets for masquerading (default 14)", func(s string) error {
		return setInt32(&cfg.MasqueradeBit, s)
	})
	fs.Func("conntrack-max-per-core", "nf_conntrack_max per CPU (0: leave the limit)", func(s string) error {
		cfg.Conntrack.MaxPerCore = new(int32)
		return setInt32(cfg.Conntrack.MaxPerCore, s)
	})
	fs.Func("conntrack-min", "lower bound of nf_conntrack_max", func(s string) error {
		cfg.Conntrack.Min = new(int32)
		return setInt32(cfg.Conntrack.Min, s)
	})
	fs.Func("conntrack-tcp-timeout-established", "nf_conntrack_tcp_timeout_established (0: leave it)", func(s string) error {
		return setDurationPtr(&cfg.Conntrack.TCPEstablishedTimeout, s)
	})
	fs.Func("conntrack-tcp-timeout-close-wait", "nf_conntrack_tcp_timeout_close_wait (0: leave it)", func(s string) error {
		return setDurationPtr(&cfg.Conntrack.TCPCloseWaitTimeout, s)
	})
	fs.BoolVar(&cfg.Conntrack.TCPBeLiberal, "conntrack-tcp-be-liberal", false, "set nf_conntrack_tcp_be_liberal=1 (then INVALID packets are not dropped)")
	fs.DurationVar(&cfg.Conntrack.UDPTimeout, "conntrack-udp-timeout", 0, "nf_conntrack_udp_timeout (0: leave it)")
	fs.DurationVar(&cfg.Conntrack.UDPStreamTimeout, "conntrack-udp-timeout-stream", 0, "nf_conntrack_udp_timeout_stream (0: leave it)")
	fs.BoolVar(&cfg.InitOnly, "init-only", false, "apply the node settings (conntrack, route_localnet) and exit")
}

func setInt32(dst *int32, s string) error {
	var v int64
	var err error
	if v, err = parseInt(s); err == nil {
		*dst = int32(v)
	}
	return err
}

func setDurationPtr(dst **time.Duration, s string) error {
	d, err := time.ParseDuration(s)
	if err == nil {
		*dst = &d
	}
	return err
}
