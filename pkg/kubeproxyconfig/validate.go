package kubeproxyconfig

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/kube-proxy/config/v1alpha1"

	"github.com/switchyard-io/switchyard/pkg/node"
)

// Validate checks a defaulted, canonical configuration as kube-proxy v1.37 does and
// reports every value that cannot work, each naming its field by its name in the file
// (e.g. "iptables.masqueradeBit"). gate holds the feature gates the configuration
// enables; unknown gates are an error, as in kube-proxy.
func Validate(cfg *v1alpha1.KubeProxyConfiguration, gate featuregate.FeatureGate) error {
	var errs []error
	invalid := func(path string, value any, why string) {
		errs = append(errs, fmt.Errorf("%s: invalid value %v: %s", path, value, why))
	}
	switch cfg.Mode {
	case "", ModeIPTables, ModeIPVS, ModeNFTables:
	default:
		invalid("mode", strconv.Quote(string(cfg.Mode)), "must be iptables, ipvs, nftables or blank (blank means iptables) on Linux")
	}
	for _, b := range []struct {
		path string
		bit  *int32
	}{{"iptables.masqueradeBit", cfg.IPTables.MasqueradeBit}, {"nftables.masqueradeBit", cfg.NFTables.MasqueradeBit}} {
		if b.bit != nil && (*b.bit < 0 || *b.bit > 31) {
			invalid(b.path, *b.bit, "must be within the range [0, 31]")
		}
	}
	s := settingsOf(cfg)
	section := sectionOf(cfg.Mode)
	if s.syncPeriod <= 0 {
		invalid(section+".syncPeriod", s.syncPeriod, "must be greater than 0")
	}
	if s.minSyncPeriod < 0 {
		invalid(section+".minSyncPeriod", s.minSyncPeriod, "must be greater than or equal to 0")
	}
	if s.minSyncPeriod > s.syncPeriod {
		invalid(section+".syncPeriod", s.syncPeriod, "must be greater than or equal to "+section+".minSyncPeriod "+s.minSyncPeriod.String())
	}
	if cfg.ConfigSyncPeriod.Duration <= 0 {
		invalid("configSyncPeriod", cfg.ConfigSyncPeriod.Duration, "must be greater than 0")
	}
	if _, err := netip.ParseAddr(cfg.BindAddress); err != nil {
		invalid("bindAddress", strconv.Quote(cfg.BindAddress), "not an IP address")
	}
	if cfg.HealthzBindAddress != "" {
		errs = append(errs, validateHostPort("healthzBindAddress", cfg.HealthzBindAddress)...)
	}
	errs = append(errs, validateHostPort("metricsBindAddress", cfg.MetricsBindAddress)...)
	if err := node.ValidateNodePortAddresses("nodePortAddresses", cfg.NodePortAddresses); err != nil {
		errs = append(errs, err)
	}
	if v := cfg.ShowHiddenMetricsForVersion; v != "" && v != previousMinor {
		invalid("showHiddenMetricsForVersion", strconv.Quote(v), "only the previous minor version "+previousMinor+" is allowed")
	}
	errs = append(errs, validateDetectLocal(cfg)...)
	if cfg.Mode == ModeIPVS {
		for _, t := range []namedSeconds{{"ipvs.tcpTimeout", cfg.IPVS.TCPTimeout.Seconds()}, {"ipvs.tcpFinTimeout", cfg.IPVS.TCPFinTimeout.Seconds()}, {"ipvs.udpTimeout", cfg.IPVS.UDPTimeout.Seconds()}} {
			if t.seconds < 0 {
				invalid(t.path, t.seconds, "must be greater than or equal to 0")
			}
		}
		for i, cidr := range cfg.IPVS.ExcludeCIDRs {
			if _, err := netip.ParsePrefix(cidr); err != nil {
				invalid(fmt.Sprintf("ipvs.excludeCIDRs[%d]", i), strconv.Quote(cidr), "must be a valid CIDR")
			}
		}
	}
	errs = append(errs, validateConntrack(&cfg.Conntrack)...)
	if cfg.OOMScoreAdj != nil && (*cfg.OOMScoreAdj < -1000 || *cfg.OOMScoreAdj > 1000) {
		invalid("oomScoreAdj", *cfg.OOMScoreAdj, "must be within the range [-1000, 1000]")
	}
	if cfg.ClientConnection.Burst < 0 {
		invalid("clientConnection.burst", cfg.ClientConnection.Burst, "must be greater than or equal to 0")
	}
	if gate != nil {
		for _, e := range logsapi.Validate(&cfg.Logging, gate, field.NewPath("logging")) {
			errs = append(errs, errors.New(e.Error()))
		}
	}
	return errors.Join(errs...)
}

// previousMinor is the only version --show-hidden-metrics-for-version accepts: the
// minor release before the kube-proxy Switchyard stands in for (v1.37).
const previousMinor = "1.36"

// sectionOf names the section that holds the sync periods of mode.
func sectionOf(mode v1alpha1.ProxyMode) string {
	switch mode {
	case ModeIPVS, ModeNFTables:
		return string(mode)
	}
	return "iptables"
}

// validateHostPort checks an IP:port address.
func validateHostPort(path, addr string) []error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []error{fmt.Errorf("%s: invalid value %q: must be IP:port", path, addr)}
	}
	var errs []error
	if _, err := netip.ParseAddr(host); err != nil {
		errs = append(errs, fmt.Errorf("%s: invalid value %q: must be a valid IP", path, host))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		errs = append(errs, fmt.Errorf("%s: invalid value %q: must be a valid port", path, port))
	}
	return errs
}

// validateDetectLocal checks detectLocalMode and the setting its mode needs.
func validateDetectLocal(cfg *v1alpha1.KubeProxyConfiguration) []error {
	switch cfg.DetectLocalMode {
	case "", LocalModeNodeCIDR:
	case LocalModeClusterCIDR:
		if cfg.ClusterCIDR != "" {
			return validateClusterCIDRs(strings.Split(cfg.ClusterCIDR, ","))
		}
	case LocalModeBridgeInterface:
		if cfg.DetectLocal.BridgeInterface == "" {
			return []error{errors.New("detectLocal.bridgeInterface: must not be empty with detectLocalMode BridgeInterface")}
		}
	case LocalModeInterfaceNamePrefix:
		if cfg.DetectLocal.InterfaceNamePrefix == "" {
			return []error{errors.New("detectLocal.interfaceNamePrefix: must not be empty with detectLocalMode InterfaceNamePrefix")}
		}
	default:
		return []error{fmt.Errorf("detectLocalMode: unsupported value %q: want ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix", cfg.DetectLocalMode)}
	}
	return nil
}

// validateClusterCIDRs accepts one CIDR or a dual-stack pair.
func validateClusterCIDRs(cidrs []string) []error {
	if len(cidrs) > 2 {
		return []error{fmt.Errorf("clusterCIDR: invalid value %q: must be a single CIDR or a dual-stack pair", strings.Join(cidrs, ","))}
	}
	var errs []error
	var prefixes []netip.Prefix
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			errs = append(errs, fmt.Errorf("clusterCIDR[%d]: invalid value %q: must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)", i, c))
			continue
		}
		prefixes = append(prefixes, p)
	}
	if len(prefixes) == 2 && prefixes[0].Addr().Is4() == prefixes[1].Addr().Is4() {
		errs = append(errs, fmt.Errorf("clusterCIDR: invalid value %q: two CIDRs must be one IPv4 and one IPv6", strings.Join(cidrs, ",")))
	}
	return errs
}

// validateConntrack refuses negative conntrack settings.
func validateConntrack(c *v1alpha1.KubeProxyConntrackConfiguration) []error {
	var errs []error
	for _, n := range []struct {
		path string
		v    *int32
	}{{"conntrack.maxPerCore", c.MaxPerCore}, {"conntrack.min", c.Min}} {
		if n.v != nil && *n.v < 0 {
			errs = append(errs, fmt.Errorf("%s: invalid value %d: must be greater than or equal to 0", n.path, *n.v))
		}
	}
	var durations []namedSeconds
	if c.TCPEstablishedTimeout != nil {
		durations = append(durations, namedSeconds{"conntrack.tcpEstablishedTimeout", c.TCPEstablishedTimeout.Seconds()})
	}
	if c.TCPCloseWaitTimeout != nil {
		durations = append(durations, namedSeconds{"conntrack.tcpCloseWaitTimeout", c.TCPCloseWaitTimeout.Seconds()})
	}
	durations = append(durations, namedSeconds{"conntrack.udpTimeout", c.UDPTimeout.Seconds()}, namedSeconds{"conntrack.udpStreamTimeout", c.UDPStreamTimeout.Seconds()})
	for _, d := range durations {
		if d.seconds < 0 {
			errs = append(errs, fmt.Errorf("%s: invalid value %vs: must be greater than or equal to 0", d.path, d.seconds))
		}
	}
	return errs
}

// namedSeconds is a duration field and its value, listed in a fixed order so that
// several errors always read the same way.
type namedSeconds struct {
	path    string
	seconds float64
}
