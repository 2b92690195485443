package kubeproxyconfig

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	// Registers --logging-format=json and its flags, as in kube-proxy.
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/controller"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// Options are kube-proxy's command line (every flag that matters on Linux, with its
// name, default and meaning) plus Switchyard's own flags.
type Options struct {
	// ConfigFile is --config: a KubeProxyConfiguration file that replaces the flags.
	ConfigFile string
	// WriteConfigTo is --write-config-to: write the effective configuration there and
	// exit.
	WriteConfigTo string
	// Cleanup is --cleanup: remove the rules kube-proxy and Switchyard created, exit.
	Cleanup bool
	// InitOnly is --init-only: apply the privileged node settings and exit.
	InitOnly bool
	// Master is --master: the API server's address, overriding the kubeconfig's.
	Master string

	// config is what the flags write into: kube-proxy's defaults at first.
	config           v1alpha1.KubeProxyConfiguration
	hostnameOverride string
	// The flags that set one value kube-proxy keeps per mode in v1alpha1.
	syncPeriod, minSyncPeriod                 time.Duration
	iptablesSyncPeriod, iptablesMinSyncPeriod time.Duration
	ipvsSyncPeriod, ipvsMinSyncPeriod         time.Duration
	masqueradeAll                             bool
	clusterCIDRs                              string
	healthzPort, metricsPort                  int32
	// switchyard holds the settings no KubeProxyConfiguration field carries.
	switchyard controller.Config
}

// NewOptions returns Options holding kube-proxy's defaults, except that localhost node
// ports default to off (Switchyard's safer default, CVE-2020-8558).
func NewOptions() *Options {
	o := &Options{healthzPort: 10256, metricsPort: 10249}
	SetDefaults(&o.config)
	o.config.IPTables.LocalhostNodePorts = ptr.To(false)
	s := settingsOf(&o.config)
	o.syncPeriod, o.minSyncPeriod = s.syncPeriod, s.minSyncPeriod
	o.iptablesSyncPeriod, o.iptablesMinSyncPeriod = s.syncPeriod, s.minSyncPeriod
	o.ipvsSyncPeriod, o.ipvsMinSyncPeriod = s.syncPeriod, s.minSyncPeriod
	o.switchyard = controller.Defaults()
	return o
}

// AddFlags registers kube-proxy's flags and Switchyard's on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	c := &o.config
	fs.StringVar(&o.ConfigFile, "config", "", "The path to a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) file. With it, the flags below are ignored except --hostname-override, --master, --cleanup, --init-only, --write-config-to, the logging flags and Switchyard's own flags. Switchyard exits when the file changes, so that its DaemonSet restarts it.")
	fs.StringVar(&o.WriteConfigTo, "write-config-to", "", "If set, write the effective configuration to this file as a KubeProxyConfiguration and exit.")
	fs.BoolVar(&o.Cleanup, "cleanup", false, "If true, remove the iptables rules, IPVS virtual servers and ipsets kube-proxy or Switchyard created, and exit.")
	fs.BoolVar(&o.InitOnly, "init-only", false, "If true, apply the node settings that need full root privileges (conntrack sysctls), then exit; run again with only CAP_NET_ADMIN.")
	fs.Var(cliflag.NewMapStringBool(&c.FeatureGates), "feature-gates", "A set of key=value pairs for kube-proxy's feature gates (those of kube-proxy "+kubeProxyVersion+" are accepted, others refused).")

	fs.StringVar(&c.ClientConnection.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig file (default: the in-cluster configuration).")
	fs.StringVar(&o.Master, "master", "", "The address of the Kubernetes API server (overrides any value in the kubeconfig).")
	fs.StringVar(&c.ClientConnection.ContentType, "kube-api-content-type", c.ClientConnection.ContentType, "Content type of requests sent to the API server.")
	fs.Int32Var(&c.ClientConnection.Burst, "kube-api-burst", c.ClientConnection.Burst, "Burst to use while talking with the API server.")
	fs.Float32Var(&c.ClientConnection.QPS, "kube-api-qps", c.ClientConnection.QPS, "QPS to use while talking with the API server.")
	fs.StringVar(&o.hostnameOverride, "hostname-override", "", "The name of this node (default: the host name). Honoured with --config too.")
	fs.Var(ipValue{&c.BindAddress}, "bind-address", "Overrides the node's primary IP family: an unspecified address of one family makes that family primary when the Node does not say.")
	fs.Var(ipPortValue{&c.HealthzBindAddress}, "healthz-bind-address", "The IP address and port of /healthz and /livez.")
	fs.Var(ipPortValue{&c.MetricsBindAddress}, "metrics-bind-address", "The IP address and port of /metrics and /proxyMode (0.0.0.0:10249 or [::]:10249 for all interfaces).")
	fs.BoolVar(&c.BindAddressHardFail, "bind-address-hard-fail", false, "If true, a health or metrics address that cannot be bound is fatal.")
	fs.BoolVar(&c.EnableProfiling, "profiling", false, "If true, serve /debug/pprof/ on the metrics address.")
	fs.StringVar(&c.ShowHiddenMetricsForVersion, "show-hidden-metrics-for-version", "", "The previous minor version ("+previousMinor+") for which hidden metrics are shown; Switchyard hides none.")
	fs.StringVar((*string)(&c.Mode), "proxy-mode", "", "Which proxy mode to use: iptables (default), ipvs or nftables.")
	fs.StringVar((*string)(&c.Mode), "mode", "", "Switchyard: same as --proxy-mode.")

	fs.Int32Var(c.IPTables.MasqueradeBit, "iptables-masquerade-bit", *c.IPTables.MasqueradeBit, "The bit of the fwmark space that marks packets to masquerade, in [0, 31].")
	fs.BoolVar(&o.masqueradeAll, "masquerade-all", false, "SNAT all traffic sent to Service cluster IPs.")
	fs.BoolVar(c.IPTables.LocalhostNodePorts, "iptables-localhost-nodeports", false, "If true, NodePort services answer on 127.0.0.1 (iptables mode, IPv4; sets route_localnet). Switchyard's default is false (kube-proxy's: true), see CVE-2020-8558.")
	fs.DurationVar(&o.iptablesSyncPeriod, "iptables-sync-period", o.iptablesSyncPeriod, "The longest interval between syncs of the rules (iptables and nftables modes); must be greater than 0.")
	fs.DurationVar(&o.iptablesMinSyncPeriod, "iptables-min-sync-period", o.iptablesMinSyncPeriod, "The shortest interval between syncs of the rules (iptables and nftables modes); 0 syncs at every change.")
	fs.DurationVar(&o.ipvsSyncPeriod, "ipvs-sync-period", o.ipvsSyncPeriod, "The longest interval between syncs in ipvs mode; must be greater than 0.")
	fs.DurationVar(&o.ipvsMinSyncPeriod, "ipvs-min-sync-period", o.ipvsMinSyncPeriod, "The shortest interval between syncs in ipvs mode; 0 syncs at every change.")
	fs.DurationVar(&o.syncPeriod, "sync-period", o.syncPeriod, "Switchyard: the longest interval between syncs, whatever the mode (--iptables-sync-period and --ipvs-sync-period win).")
	fs.DurationVar(&o.minSyncPeriod, "min-sync-period", o.minSyncPeriod, "Switchyard: the shortest interval between syncs, whatever the mode (--iptables-min-sync-period and --ipvs-min-sync-period win).")
	fs.StringVar(&c.IPVS.Scheduler, "ipvs-scheduler", "", "The IPVS scheduler in ipvs mode (rr if empty); the switchyard.io/ipvs-scheduler annotation overrides it per Service.")
	fs.StringSliceVar(&c.IPVS.ExcludeCIDRs, "ipvs-exclude-cidrs", nil, "A comma-separated list of CIDRs whose IPVS virtual servers are never cleaned up.")
	fs.BoolVar(&c.IPVS.StrictARP, "ipvs-strict-arp", false, "Set arp_ignore to 1 and arp_announce to 2 (ipvs mode).")
	fs.DurationVar(&c.IPVS.TCPTimeout.Duration, "ipvs-tcp-timeout", 0, "The timeout of idle IPVS TCP connections, 0 to leave as is.")
	fs.DurationVar(&c.IPVS.TCPFinTimeout.Duration, "ipvs-tcpfin-timeout", 0, "The timeout of IPVS TCP connections after a FIN, 0 to leave as is.")
	fs.DurationVar(&c.IPVS.UDPTimeout.Duration, "ipvs-udp-timeout", 0, "The timeout of IPVS UDP flows, 0 to leave as is.")

	fs.StringVar((*string)(&c.DetectLocalMode), "detect-local-mode", "", "How local traffic is detected: ClusterCIDR (default), NodeCIDR, BridgeInterface or InterfaceNamePrefix.")
	fs.StringVar(&c.DetectLocal.BridgeInterface, "pod-bridge-interface", "", "With --detect-local-mode=BridgeInterface: the pods' bridge.")
	fs.StringVar(&c.DetectLocal.InterfaceNamePrefix, "pod-interface-name-prefix", "", "With --detect-local-mode=InterfaceNamePrefix: the prefix of the pods' interfaces.")
	fs.StringVar(&o.clusterCIDRs, "cluster-cidr", "", "The pods' CIDR, or a dual-stack pair separated by a comma; with --detect-local-mode=ClusterCIDR, traffic from it is local.")
	fs.StringSliceVar(&c.NodePortAddresses, "nodeport-addresses", nil, "CIDRs and keywords (primary, localhost, all) of the node addresses that accept NodePort traffic (default: all in iptables and ipvs mode).")

	fs.Int32Var(c.OOMScoreAdj, "oom-score-adj", *c.OOMScoreAdj, "The oom_score_adj of the process, in [-1000, 1000].")
	fs.Int32Var(c.Conntrack.MaxPerCore, "conntrack-max-per-core", *c.Conntrack.MaxPerCore, "Maximum number of NAT connections to track per CPU core (0 to leave the limit and ignore --conntrack-min).")
	fs.Int32Var(c.Conntrack.Min, "conntrack-min", *c.Conntrack.Min, "Minimum number of conntrack entries, whatever --conntrack-max-per-core says.")
	fs.DurationVar(&c.Conntrack.TCPEstablishedTimeout.Duration, "conntrack-tcp-timeout-established", c.Conntrack.TCPEstablishedTimeout.Duration, "Idle timeout of established TCP connections (0 to leave as is).")
	fs.DurationVar(&c.Conntrack.TCPCloseWaitTimeout.Duration, "conntrack-tcp-timeout-close-wait", c.Conntrack.TCPCloseWaitTimeout.Duration, "NAT timeout of TCP connections in CLOSE_WAIT.")
	fs.BoolVar(&c.Conntrack.TCPBeLiberal, "conntrack-tcp-be-liberal", false, "Set nf_conntrack_tcp_be_liberal to 1 (and write no ctstate INVALID drop rule).")
	fs.DurationVar(&c.Conntrack.UDPTimeout.Duration, "conntrack-udp-timeout", 0, "Idle timeout of UNREPLIED UDP flows (0 to leave as is).")
	fs.DurationVar(&c.Conntrack.UDPStreamTimeout.Duration, "conntrack-udp-timeout-stream", 0, "Idle timeout of ASSURED UDP flows (0 to leave as is).")
	fs.DurationVar(&c.ConfigSyncPeriod.Duration, "config-sync-period", c.ConfigSyncPeriod.Duration, "How often the informers resync from their caches; must be greater than 0.")
	fs.Int32Var(&o.healthzPort, "healthz-port", o.healthzPort, "The port of /healthz; 0 turns it off.")
	_ = fs.MarkDeprecated("healthz-port", "use --healthz-bind-address instead.")
	fs.Int32Var(&o.metricsPort, "metrics-port", o.metricsPort, "The port of /metrics.")
	_ = fs.MarkDeprecated("metrics-port", "use --metrics-bind-address instead.")

	s := &o.switchyard
	fs.DurationVar(&s.FullSyncPeriod, "full-sync-period", s.FullSyncPeriod, "Switchyard: interval between full rewrites of the rules (0: only when needed).")
	fs.StringVar(&s.IPTablesBackend, "iptables-backend", "auto", "Switchyard: iptables backend: auto, nft or legacy.")
	fs.DurationVar(&s.IPTablesLockWait, "iptables-lock-wait", s.IPTablesLockWait, "Switchyard: longest wait for the xtables lock.")
	fs.DurationVar(&s.HealthTimeout, "healthz-timeout", 0, "Switchyard: how long changes may stay unapplied before /healthz fails (default: 2 × the sync period).")
	fs.DurationVar(&s.NodeWaitTimeout, "node-wait-timeout", 0, "Switchyard: give up if the Node has no addresses after this long (default: wait forever).")

	logsapi.AddFlags(&c.Logging, fs)
}

// honouredWithConfig are the flags that still count when --config is given: those
// kube-proxy keeps outside its configuration (cmd/kube-proxy/app/options.go: the
// config file replaces the whole configuration the other flags wrote into), and
// Switchyard's own flags, which no file field carries.
var honouredWithConfig = map[string]bool{
	"config": true, "write-config-to": true, "cleanup": true, "init-only": true,
	"hostname-override": true, "master": true,
	"full-sync-period": true, "iptables-backend": true, "iptables-lock-wait": true,
	"healthz-timeout": true, "node-wait-timeout": true,
}

// loggingFlags returns the names of the logging flags, which override the file's
// logging section, as in kube-proxy.
func loggingFlags() map[string]bool {
	var cfg logsapi.LoggingConfiguration
	fs := pflag.NewFlagSet("logging", pflag.ContinueOnError)
	logsapi.AddFlags(&cfg, fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
	return names
}

// Resolved is the effective configuration.
type Resolved struct {
	// KubeProxy is the effective KubeProxyConfiguration, defaulted and in the form
	// kube-proxy writes; --write-config-to writes it.
	KubeProxy *v1alpha1.KubeProxyConfiguration
	// Controller is the daemon's configuration.
	Controller controller.Config
	// FeatureGate holds the feature gates, set from the configuration.
	FeatureGate featuregate.FeatureGate
	// Warnings name the settings that were dropped or cannot be honoured.
	Warnings []string
	// Notices are deliberate differences from kube-proxy worth one log line.
	Notices []string
	// IgnoredFlags are the flags given with --config that do not count.
	IgnoredFlags []string
	// ConfigData is the content of the configuration file as read, for WatchFile.
	ConfigData []byte
}

// Complete resolves the configuration from the file or the flags parsed into fs,
// applies kube-proxy's defaults and precedence, validates it and converts it. It
// reads the configuration file but touches nothing else.
func (o *Options) Complete(fs *pflag.FlagSet) (*Resolved, error) {
	r := &Resolved{}
	var cfg *v1alpha1.KubeProxyConfiguration
	if o.ConfigFile != "" {
		loaded, data, warnings, err := load(o.ConfigFile)
		if err != nil {
			return nil, err
		}
		r.ConfigData = data
		r.Warnings = append(r.Warnings, warnings...)
		if loaded.IPTables.LocalhostNodePorts == nil {
			// kube-proxy would default this to true. Switchyard keeps node ports off
			// 127.0.0.1 unless the file says so (CVE-2020-8558); see docs/migrating.md.
			// In nftables mode neither serves them: nothing to notice.
			loaded.IPTables.LocalhostNodePorts = ptr.To(false)
			if loaded.Mode != ModeNFTables {
				r.Notices = append(r.Notices, fmt.Sprintf("config file %s does not set iptables.localhostNodePorts: Switchyard serves no node ports on 127.0.0.1 (kube-proxy would); set it to true to match kube-proxy", o.ConfigFile))
			}
		}
		SetDefaults(loaded)
		if err := copyLoggingFlags(fs, &loaded.Logging); err != nil {
			return nil, err
		}
		canonicalize(loaded)
		cfg = loaded
		r.IgnoredFlags = ignoredFlags(fs)
	} else {
		cfg = o.config.DeepCopy()
		o.applyModeFlags(fs, cfg)
		if fs.Changed("cluster-cidr") {
			cfg.ClusterCIDR = o.clusterCIDRs
		}
		if o.WriteConfigTo == "" {
			cfg.HealthzBindAddress = addressFromPort(cfg.HealthzBindAddress, o.healthzPort)
			cfg.MetricsBindAddress = addressFromPort(cfg.MetricsBindAddress, o.metricsPort)
		}
		if !*cfg.IPTables.LocalhostNodePorts && cfg.Mode != ModeNFTables {
			r.Notices = append(r.Notices, "--iptables-localhost-nodeports is false: node ports do not answer on 127.0.0.1 (kube-proxy's default is true; Switchyard's is false, see CVE-2020-8558)")
		}
	}
	if fs.Changed("hostname-override") {
		name := strings.TrimSpace(o.hostnameOverride)
		if name == "" {
			return nil, fmt.Errorf("--hostname-override: an empty name is invalid")
		}
		cfg.HostnameOverride = strings.ToLower(name)
	}
	gate, err := NewFeatureGate()
	if err != nil {
		return nil, err
	}
	if err := gate.SetFromMap(cfg.FeatureGates); err != nil {
		return nil, fmt.Errorf("%s: %w", o.source("featureGates", "--feature-gates"), err)
	}
	if err := Validate(cfg, gate); err != nil {
		return nil, fmt.Errorf("%s: %w", o.source("invalid configuration", "invalid flags"), err)
	}
	ctrl, warnings, err := ToController(cfg, &o.switchyard)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.source("invalid configuration", "invalid flags"), err)
	}
	ctrl.Client.Master = o.Master
	if cfg.Mode == ModeNFTables && gate.Enabled(FeatureNFTablesLocalhostNodePorts) {
		ctrl.NFTablesLocalhostNodePorts = true
		if node.NodePortsNameLoopback(cfg.NodePortAddresses, v1.IPv4Protocol) || node.NodePortsNameLoopback(cfg.NodePortAddresses, v1.IPv6Protocol) {
			warnings = append(warnings, fmt.Sprintf("featureGates %s with loopback in nodePortAddresses: kube-proxy proxies TCP node ports on loopback in userspace; Switchyard writes the same table (UDP and SCTP rejected there) but does not proxy them", FeatureNFTablesLocalhostNodePorts))
		}
	}
	ctrl.InitOnly = o.InitOnly
	r.KubeProxy, r.Controller, r.FeatureGate = cfg, ctrl, gate
	r.Warnings = append(r.Warnings, warnings...)
	return r, nil
}

// source names where the configuration came from, for errors.
func (o *Options) source(withFile, withFlags string) string {
	if o.ConfigFile != "" {
		return "config file " + o.ConfigFile + ": " + withFile
	}
	return withFlags
}

// applyModeFlags applies the flags whose v1alpha1 field depends on the mode, as
// kube-proxy does: --iptables-* count unless the mode is ipvs, --ipvs-* only in ipvs
// mode. Switchyard's --sync-period and --min-sync-period count in every mode, below
// kube-proxy's spellings.
func (o *Options) applyModeFlags(fs *pflag.FlagSet, cfg *v1alpha1.KubeProxyConfiguration) {
	s := modeSettings{syncPeriod: o.syncPeriod, minSyncPeriod: o.minSyncPeriod, masqueradeAll: o.masqueradeAll}
	ipvs := cfg.Mode == ModeIPVS
	if fs.Changed("iptables-sync-period") && !ipvs {
		s.syncPeriod = o.iptablesSyncPeriod
	}
	if fs.Changed("iptables-min-sync-period") && !ipvs {
		s.minSyncPeriod = o.iptablesMinSyncPeriod
	}
	if fs.Changed("ipvs-sync-period") && ipvs {
		s.syncPeriod = o.ipvsSyncPeriod
	}
	if fs.Changed("ipvs-min-sync-period") && ipvs {
		s.minSyncPeriod = o.ipvsMinSyncPeriod
	}
	applyPlatformDefaults(cfg)
	setSettings(cfg, s)
}

// addressFromPort applies the deprecated --healthz-port and --metrics-port as
// kube-proxy does: 0 turns the server off, another port is added to a bare IP.
func addressFromPort(addr string, port int32) string {
	if port == 0 {
		return ""
	}
	return appendPortIfNeeded(addr, fmt.Sprint(port))
}

// ignoredFlags lists the flags set on the command line that --config overrides.
func ignoredFlags(fs *pflag.FlagSet) []string {
	logging := loggingFlags()
	var ignored []string
	fs.Visit(func(f *pflag.Flag) {
		if !honouredWithConfig[f.Name] && !logging[f.Name] {
			ignored = append(ignored, "--"+f.Name)
		}
	})
	sort.Strings(ignored)
	return ignored
}

// copyLoggingFlags applies the logging flags given on the command line over the
// file's logging section, so that `--config F -v=5` raises the verbosity, as in
// kube-proxy; --vmodule entries from the flags come first.
func copyLoggingFlags(from *pflag.FlagSet, to *logsapi.LoggingConfiguration) error {
	fileVModule := to.VModule
	to.VModule = nil
	clone := pflag.NewFlagSet("logging", pflag.ContinueOnError)
	logsapi.AddFlags(to, clone)
	var err error
	clone.VisitAll(func(f *pflag.Flag) {
		given := from.Lookup(f.Name)
		if err != nil || given == nil || !given.Changed {
			return
		}
		if setErr := f.Value.Set(given.Value.String()); setErr != nil {
			err = fmt.Errorf("--%s: %w", f.Name, setErr)
		}
	})
	to.VModule = append(to.VModule, fileVModule...)
	return err
}
