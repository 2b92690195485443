package kubeproxyconfig

import (
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"
)

// kube-proxy's default values (pkg/proxy/apis/config/v1alpha1/defaults.go and
// pkg/cluster/ports in kubernetes v1.37).
const (
	defaultHealthzPort   = "10256"
	defaultMetricsPort   = "10249"
	defaultOOMScoreAdj   = -999 // qos.KubeProxyOOMScoreAdj
	defaultMasqueradeBit = 14
	defaultContentType   = "application/vnd.kubernetes.protobuf"
	defaultQPS           = 5
	defaultBurst         = 10
	defaultSyncPeriod    = 30 * time.Second
	defaultMinSync       = time.Second
	defaultConfigSync    = 15 * time.Minute
)

// Proxy modes and local-traffic detection modes of KubeProxyConfiguration.
const (
	ModeIPTables = "iptables"
	ModeIPVS     = "ipvs"
	ModeNFTables = "nftables"

	LocalModeClusterCIDR         = "ClusterCIDR"
	LocalModeNodeCIDR            = "NodeCIDR"
	LocalModeBridgeInterface     = "BridgeInterface"
	LocalModeInterfaceNamePrefix = "InterfaceNamePrefix"
)

// SetDefaults fills the unset fields of cfg with kube-proxy v1.37's defaults for
// KubeProxyConfiguration v1alpha1. It is what kube-proxy applies to a decoded file and
// to the configuration its flags start from.
func SetDefaults(cfg *v1alpha1.KubeProxyConfiguration) {
	if cfg.BindAddress == "" {
		cfg.BindAddress = "0.0.0.0"
	}
	// The health and metrics servers follow the family of bindAddress.
	healthzHost, metricsHost := "0.0.0.0", "127.0.0.1"
	if ip, err := netip.ParseAddr(cfg.BindAddress); err == nil && ip.Unmap().Is6() {
		healthzHost, metricsHost = "[::]", "[::1]"
	}
	cfg.HealthzBindAddress = defaultAddress(cfg.HealthzBindAddress, healthzHost, defaultHealthzPort)
	cfg.MetricsBindAddress = defaultAddress(cfg.MetricsBindAddress, metricsHost, defaultMetricsPort)

	if cfg.OOMScoreAdj == nil {
		cfg.OOMScoreAdj = ptr.To[int32](defaultOOMScoreAdj)
	}
	defaultDuration(&cfg.IPTables.SyncPeriod, defaultSyncPeriod)
	defaultDuration(&cfg.IPTables.MinSyncPeriod, defaultMinSync)
	if cfg.IPTables.LocalhostNodePorts == nil {
		cfg.IPTables.LocalhostNodePorts = ptr.To(true)
	}
	// kube-proxy defaults no ipvs.minSyncPeriod: zero is a valid value there.
	defaultDuration(&cfg.IPVS.SyncPeriod, defaultSyncPeriod)
	defaultDuration(&cfg.NFTables.SyncPeriod, defaultSyncPeriod)
	defaultDuration(&cfg.NFTables.MinSyncPeriod, defaultMinSync)
	if cfg.IPTables.MasqueradeBit == nil {
		cfg.IPTables.MasqueradeBit = ptr.To[int32](defaultMasqueradeBit)
	}
	if cfg.NFTables.MasqueradeBit == nil {
		cfg.NFTables.MasqueradeBit = ptr.To[int32](defaultMasqueradeBit)
	}

	if cfg.Conntrack.MaxPerCore == nil {
		cfg.Conntrack.MaxPerCore = ptr.To[int32](32 * 1024)
	}
	if cfg.Conntrack.Min == nil {
		cfg.Conntrack.Min = ptr.To[int32](128 * 1024)
	}
	if cfg.Conntrack.TCPEstablishedTimeout == nil {
		cfg.Conntrack.TCPEstablishedTimeout = &metav1.Duration{Duration: 24 * time.Hour}
	}
	if cfg.Conntrack.TCPCloseWaitTimeout == nil {
		// One hour, longer than typical server timeouts (kubernetes#32551).
		cfg.Conntrack.TCPCloseWaitTimeout = &metav1.Duration{Duration: time.Hour}
	}
	defaultDuration(&cfg.ConfigSyncPeriod, defaultConfigSync)

	if cfg.ClientConnection.ContentType == "" {
		cfg.ClientConnection.ContentType = defaultContentType
	}
	if cfg.ClientConnection.QPS == 0 {
		cfg.ClientConnection.QPS = defaultQPS
	}
	if cfg.ClientConnection.Burst == 0 {
		cfg.ClientConnection.Burst = defaultBurst
	}
	if cfg.FeatureGates == nil {
		cfg.FeatureGates = map[string]bool{}
	}
	logsapi.SetRecommendedLoggingConfiguration(&cfg.Logging)
}

// defaultAddress gives an empty address host:port, and a bare host the port, as
// kube-proxy's AppendPortIfNeeded does.
func defaultAddress(addr, host, port string) string {
	if addr == "" {
		return host + ":" + port
	}
	return appendPortIfNeeded(addr, port)
}

// appendPortIfNeeded adds port to a bare IP address and leaves anything else alone.
func appendPortIfNeeded(addr, port string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	if ip.Is6() && !ip.Is4In6() {
		return "[" + addr + "]:" + port
	}
	return addr + ":" + port
}

func defaultDuration(d *metav1.Duration, value time.Duration) {
	if d.Duration == 0 {
		d.Duration = value
	}
}

// applyPlatformDefaults applies what kube-proxy decides on Linux after the file or the
// flags are read: an empty mode is iptables, an empty detectLocalMode is ClusterCIDR,
// and nftables mode serves node ports on the primary addresses only.
func applyPlatformDefaults(cfg *v1alpha1.KubeProxyConfiguration) {
	if cfg.Mode == "" {
		cfg.Mode = ModeIPTables
	}
	if cfg.Mode == ModeNFTables && len(cfg.NodePortAddresses) == 0 {
		cfg.NodePortAddresses = []string{"primary"}
	}
	if cfg.DetectLocalMode == "" {
		cfg.DetectLocalMode = LocalModeClusterCIDR
	}
}

// modeSettings are the settings kube-proxy keeps once, internally, but v1alpha1 spells
// once per mode: the sync periods and masqueradeAll.
type modeSettings struct {
	syncPeriod, minSyncPeriod time.Duration
	masqueradeAll             bool
}

// settingsOf reads the mode-dependent settings from the section of cfg's mode, as
// kube-proxy's conversion to its internal configuration does.
func settingsOf(cfg *v1alpha1.KubeProxyConfiguration) modeSettings {
	switch cfg.Mode {
	case ModeIPVS:
		return modeSettings{cfg.IPVS.SyncPeriod.Duration, cfg.IPVS.MinSyncPeriod.Duration, cfg.IPTables.MasqueradeAll}
	case ModeNFTables:
		return modeSettings{cfg.NFTables.SyncPeriod.Duration, cfg.NFTables.MinSyncPeriod.Duration, cfg.NFTables.MasqueradeAll}
	default:
		return modeSettings{cfg.IPTables.SyncPeriod.Duration, cfg.IPTables.MinSyncPeriod.Duration, cfg.IPTables.MasqueradeAll}
	}
}

// setSettings writes s into the section of cfg's mode and clears the other sections'
// copies: the form kube-proxy --write-config-to produces, because it writes from its
// internal configuration, which has only one of each.
func setSettings(cfg *v1alpha1.KubeProxyConfiguration, s modeSettings) {
	zero := metav1.Duration{}
	cfg.IPTables.SyncPeriod, cfg.IPTables.MinSyncPeriod = zero, zero
	cfg.IPVS.SyncPeriod, cfg.IPVS.MinSyncPeriod = zero, zero
	cfg.NFTables.SyncPeriod, cfg.NFTables.MinSyncPeriod = zero, zero
	cfg.IPTables.MasqueradeAll, cfg.NFTables.MasqueradeAll = false, false
	sync, minSync := metav1.Duration{Duration: s.syncPeriod}, metav1.Duration{Duration: s.minSyncPeriod}
	switch cfg.Mode {
	case ModeIPVS:
		cfg.IPVS.SyncPeriod, cfg.IPVS.MinSyncPeriod = sync, minSync
		cfg.IPTables.MasqueradeAll = s.masqueradeAll
	case ModeNFTables:
		cfg.NFTables.SyncPeriod, cfg.NFTables.MinSyncPeriod = sync, minSync
		cfg.NFTables.MasqueradeAll = s.masqueradeAll
	default:
		cfg.IPTables.SyncPeriod, cfg.IPTables.MinSyncPeriod = sync, minSync
		cfg.IPTables.MasqueradeAll = s.masqueradeAll
	}
}

// canonicalize puts a defaulted cfg into the form kube-proxy reads it as and writes it
// back: platform defaults applied, the mode-dependent settings only in the mode's
// section.
func canonicalize(cfg *v1alpha1.KubeProxyConfiguration) {
	applyPlatformDefaults(cfg)
	setSettings(cfg, settingsOf(cfg))
}
