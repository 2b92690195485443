package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/controller"
)

// runDaemon implements `switchyard run`: program this node until SIGTERM. Flags use
// kube-proxy's names and defaults.
func runDaemon(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := controller.Defaults()
	var clusterCIDRs, nodePortAddresses stringList
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "path to a kubeconfig file (default: in-cluster configuration)")
	fs.StringVar(&cfg.NodeName, "hostname-override", "", "this node's name (default: the host name)")
	fs.StringVar(&cfg.Mode, "proxy-mode", cfg.Mode, "proxy mode: iptables or ipvs")
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "same as --proxy-mode")
	fs.Var(&clusterCIDRs, "cluster-cidr", "pod CIDRs, at most one per family; traffic from outside them to cluster IPs is masqueraded")
	fs.BoolVar(&cfg.MasqueradeAll, "masquerade-all", false, "masquerade all traffic to service IPs")
	fs.Var(&nodePortAddresses, "nodeport-addresses", "CIDRs of the node addresses that accept node ports, or the keywords primary, localhost, all (default: all)")
	fs.DurationVar(&cfg.MinSyncPeriod, "min-sync-period", cfg.MinSyncPeriod, "minimum interval between syncs")
	fs.DurationVar(&cfg.SyncPeriod, "sync-period", cfg.SyncPeriod, "maximum interval between syncs")
	fs.DurationVar(&cfg.FullSyncPeriod, "full-sync-period", cfg.FullSyncPeriod, "interval between full rewrites of the rules (0: only when needed)")
	fs.StringVar(&cfg.HealthzBindAddress, "healthz-bind-address", cfg.HealthzBindAddress, "address for /healthz and /livez (empty: off)")
	fs.StringVar(&cfg.MetricsBindAddress, "metrics-bind-address", cfg.MetricsBindAddress, "address for /metrics (empty: off)")
	fs.StringVar(&cfg.IPTablesBackend, "iptables-backend", "auto", "iptables backend: auto, nft or legacy")
	fs.DurationVar(&cfg.IPTablesLockWait, "iptables-lock-wait", cfg.IPTablesLockWait, "longest wait for the xtables lock")
	fs.BoolVar(&cfg.LocalhostNodePorts, "iptables-localhost-nodeports", false, "accept IPv4 node ports on 127.0.0.1 (needs route_localnet; see CVE-2020-8558)")
	fs.DurationVar(&cfg.HealthTimeout, "healthz-timeout", 0, "how long changes may stay unapplied before /healthz fails (default: 2 × --sync-period)")
	fs.DurationVar(&cfg.NodeWaitTimeout, "node-wait-timeout", 0, "give up if the Node has no addresses after this long (default: wait forever)")
	var ipvsExcludeCIDRs stringList
	fs.StringVar(&cfg.IPVS.Scheduler, "ipvs-scheduler", "rr", "with --proxy-mode ipvs: the default scheduler (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh); the switchyard.io/ipvs-scheduler annotation overrides it per service")
	fs.BoolVar(&cfg.IPVS.StrictARP, "ipvs-strict-arp", false, "with --proxy-mode ipvs: set arp_ignore=1 and arp_announce=2")
	fs.DurationVar(&cfg.IPVS.TCPTimeout, "ipvs-tcp-timeout", 0, "with --proxy-mode ipvs: idle timeout of established TCP connections (0: the kernel's)")
	fs.DurationVar(&cfg.IPVS.TCPFinTimeout, "ipvs-tcpfin-timeout", 0, "with --proxy-mode ipvs: timeout of TCP connections after a FIN (0: the kernel's)")
	fs.DurationVar(&cfg.IPVS.UDPTimeout, "ipvs-udp-timeout", 0, "with --proxy-mode ipvs: timeout of UDP flows (0: the kernel's)")
	fs.Var(&ipvsExcludeCIDRs, "ipvs-exclude-cidrs", "with --proxy-mode ipvs: CIDRs whose IPVS virtual servers are never cleaned up")
	registerDatapathFlags(fs, &cfg)
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.Var(klogFlags.Lookup("v").Value, "v", "log verbosity: 0 lifecycle, 2 each sync, 4 each object, 9 payloads")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.ClusterCIDRs, err = parsePrefixes("cluster-cidr", clusterCIDRs); err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return 2
	}
	cfg.NodePortAddresses = nodePortAddresses
	if cfg.IPVS.ExcludeCIDRs, err = parsePrefixes("ipvs-exclude-cidrs", ipvsExcludeCIDRs); err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return 2
	}
	c, err := controller.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return 2
	}
	ctx = klog.NewContext(ctx, klog.Background())
	if err := c.Run(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "switchyard stopped")
		return 1
	}
	return 0
}
