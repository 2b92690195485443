package kubeproxyconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/controller"
)

// ToController converts a validated, canonical configuration into the daemon's.
// switchyard carries the settings no KubeProxyConfiguration field has (full sync
// period, iptables backend and lock wait, health timeout, node wait timeout); its other
// fields are ignored. The warnings name each setting Switchyard accepts but does not
// honour.
func ToController(cfg *v1alpha1.KubeProxyConfiguration, switchyard *controller.Config) (controller.Config, []string, error) {
	out := controller.Defaults()
	out.FullSyncPeriod = switchyard.FullSyncPeriod
	out.IPTablesBackend = switchyard.IPTablesBackend
	out.IPTablesLockWait = switchyard.IPTablesLockWait
	out.HealthTimeout = switchyard.HealthTimeout
	out.NodeWaitTimeout = switchyard.NodeWaitTimeout

	warnings := unhonoured(cfg)
	var errs []error
	out.Mode = string(cfg.Mode)
	masqueradeBit := cfg.IPTables.MasqueradeBit
	if cfg.Mode == ModeNFTables {
		masqueradeBit = cfg.NFTables.MasqueradeBit
	}
	s := settingsOf(cfg)
	out.SyncPeriod, out.MinSyncPeriod, out.MasqueradeAll = s.syncPeriod, s.minSyncPeriod, s.masqueradeAll
	out.MasqueradeBit = ptr.Deref(masqueradeBit, defaultMasqueradeBit)

	out.Kubeconfig = cfg.ClientConnection.Kubeconfig
	out.Client = controller.ClientConfig{
		QPS:                cfg.ClientConnection.QPS,
		Burst:              cfg.ClientConnection.Burst,
		ContentType:        cfg.ClientConnection.ContentType,
		AcceptContentTypes: cfg.ClientConnection.AcceptContentTypes,
	}
	out.NodeName = cfg.HostnameOverride
	out.BindAddress = cfg.BindAddress
	out.HealthzBindAddress = cfg.HealthzBindAddress
	out.MetricsBindAddress = cfg.MetricsBindAddress
	out.BindAddressHardFail = cfg.BindAddressHardFail
	out.EnableProfiling = cfg.EnableProfiling
	out.OOMScoreAdj = cfg.OOMScoreAdj
	out.ConfigSyncPeriod = cfg.ConfigSyncPeriod.Duration
	out.LocalhostNodePorts = ptr.Deref(cfg.IPTables.LocalhostNodePorts, false)
	out.NodePortAddresses = append([]string(nil), cfg.NodePortAddresses...)

	if cfg.ClusterCIDR != "" {
		for _, c := range strings.Split(cfg.ClusterCIDR, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(c))
			switch {
			case err == nil:
				out.ClusterCIDRs = append(out.ClusterCIDRs, p.Masked())
			case cfg.DetectLocalMode == LocalModeClusterCIDR:
				errs = append(errs, fmt.Errorf("clusterCIDR %q: %w", c, err))
			}
			// Otherwise the CIDR is unused, and kube-proxy does not validate it either.
		}
	}
	out.DetectLocal = controller.DetectLocalConfig{
		Mode:                string(cfg.DetectLocalMode),
		BridgeInterface:     cfg.DetectLocal.BridgeInterface,
		InterfaceNamePrefix: cfg.DetectLocal.InterfaceNamePrefix,
	}
	out.Conntrack = controller.ConntrackConfig{
		MaxPerCore:            cfg.Conntrack.MaxPerCore,
		Min:                   cfg.Conntrack.Min,
		TCPEstablishedTimeout: durationPtr(cfg.Conntrack.TCPEstablishedTimeout),
		TCPCloseWaitTimeout:   durationPtr(cfg.Conntrack.TCPCloseWaitTimeout),
		TCPBeLiberal:          cfg.Conntrack.TCPBeLiberal,
		UDPTimeout:            cfg.Conntrack.UDPTimeout.Duration,
		UDPStreamTimeout:      cfg.Conntrack.UDPStreamTimeout.Duration,
	}
	out.IPVS = controller.IPVSConfig{
		Scheduler:     cfg.IPVS.Scheduler,
		StrictARP:     cfg.IPVS.StrictARP,
		TCPTimeout:    cfg.IPVS.TCPTimeout.Duration,
		TCPFinTimeout: cfg.IPVS.TCPFinTimeout.Duration,
		UDPTimeout:    cfg.IPVS.UDPTimeout.Duration,
	}
	for i, c := range cfg.IPVS.ExcludeCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		switch {
		case err == nil:
			out.IPVS.ExcludeCIDRs = append(out.IPVS.ExcludeCIDRs, p.Masked())
		case cfg.Mode == ModeIPVS:
			errs = append(errs, fmt.Errorf("ipvs.excludeCIDRs[%d] %q: %w", i, c, err))
		}
		// Otherwise the setting is unused outside IPVS mode, as kube-proxy treats it.
	}
	if err := errors.Join(errs...); err != nil {
		return controller.Config{}, nil, err
	}
	if err := out.Validate(); err != nil {
		return controller.Config{}, nil, err
	}
	return out, warnings, nil
}

// durationPtr converts an optional duration, keeping nil (leave the kernel's value).
func durationPtr(d *metav1.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	return ptr.To(d.Duration)
}

// unhonoured lists the settings Switchyard accepts, because kube-proxy does, but does
// not act on.
func unhonoured(cfg *v1alpha1.KubeProxyConfiguration) []string {
	var out []string
	if cfg.Winkernel != (v1alpha1.KubeProxyWinkernelConfiguration{}) {
		out = append(out, "winkernel: Windows settings are ignored on Linux")
	}
	if cfg.WindowsRunAsService {
		out = append(out, "windowsRunAsService: ignored on Linux")
	}
	if cfg.PortRange != "" {
		out = append(out, fmt.Sprintf("portRange %q: ignored, as kube-proxy v1.37 ignores it (it served the removed userspace mode)", cfg.PortRange))
	}
	if cfg.ShowHiddenMetricsForVersion != "" {
		out = append(out, fmt.Sprintf("showHiddenMetricsForVersion %q: accepted; Switchyard hides no metrics", cfg.ShowHiddenMetricsForVersion))
	}
	var gates []string
	for name := range cfg.FeatureGates {
		if !strings.HasPrefix(name, "Logging") && name != "ContextualLogging" &&
			(name != string(FeatureNFTablesLocalhostNodePorts) || cfg.Mode != ModeNFTables) {
			gates = append(gates, name)
		}
	}
	if len(gates) > 0 {
		sort.Strings(gates)
		out = append(out, fmt.Sprintf("featureGates %s: accepted as kube-proxy accepts them; none changes what Switchyard does", strings.Join(gates, ", ")))
	}
	return out
}
