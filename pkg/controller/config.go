// Package controller runs Switchyard's daemon: informers feed the change tracker, a
// bounded-frequency runner coalesces syncs, and each sync renders and applies rules per
// IP family. It is the only layer that logs; the packages below it return errors.
package controller

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// Config is the daemon's configuration; flags fill it with kube-proxy's names.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; empty means in-cluster config.
	Kubeconfig string
	// NodeName is this node's name (--hostname-override); empty means the host name.
	NodeName string
	// Mode is the proxy mode: a name registered in modes (proxiers.go).
	Mode string
	// ClusterCIDRs are the pod ranges, at most one per family (--cluster-cidr).
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll SNATs all traffic to service IPs (--masquerade-all).
	MasqueradeAll bool
	// NodePortAddresses limits node ports to node addresses in these CIDRs, or names
	// them with kube-proxy's keywords "primary", "localhost" and "all"
	// (--nodeport-addresses, nodePortAddresses); empty means all.
	NodePortAddresses []string
	// MinSyncPeriod is the minimum interval between syncs (--min-sync-period).
	MinSyncPeriod time.Duration
	// SyncPeriod is the maximum interval between syncs (--sync-period).
	SyncPeriod time.Duration
	// FullSyncPeriod is the interval between full rewrites (--full-sync-period).
	FullSyncPeriod time.Duration
	// HealthzBindAddress serves /healthz and /livez (--healthz-bind-address); empty
	// disables it.
	HealthzBindAddress string
	// MetricsBindAddress serves /metrics (--metrics-bind-address); empty disables it.
	MetricsBindAddress string
	// IPTablesBackend is "", "auto", "nft" or "legacy" (--iptables-backend).
	IPTablesBackend string
	// IPTablesLockWait bounds the wait for the xtables lock (--iptables-lock-wait).
	IPTablesLockWait time.Duration
	// LocalhostNodePorts accepts IPv4 node ports on 127.0.0.1
	// (--iptables-localhost-nodeports).
	LocalhostNodePorts bool
	// NFTablesLocalhostNodePorts is kube-proxy's alpha feature gate
	// KubeProxyNFTablesLocalhostNodePorts (off by default): in nftables mode, node
	// ports on loopback are rejected and counted (pkg/nftables' LocalhostNodePortRejects).
	NFTablesLocalhostNodePorts bool
	// HealthTimeout is how long queued changes may stay unapplied before /healthz
	// fails; zero means twice SyncPeriod, as kube-proxy does.
	HealthTimeout time.Duration
	// CanaryInterval is how often the canary chains are checked.
	CanaryInterval time.Duration
	// NodeWaitTimeout bounds the wait for the Node to exist with addresses; zero
	// waits forever, as kube-proxy does.
	NodeWaitTimeout time.Duration
	// IPVS holds the settings of --proxy-mode ipvs.
	IPVS IPVSConfig

	// MasqueradeBit is the fwmark bit that marks packets for masquerading, 0 to 31
	// (--iptables-masquerade-bit, iptables.masqueradeBit; kube-proxy's default 14).
	MasqueradeBit int32
	// DetectLocal says how traffic from local pods is told apart (--detect-local-mode
	// and its companions).
	DetectLocal DetectLocalConfig
	// Conntrack holds the conntrack sysctls applied at start (--conntrack-*).
	Conntrack ConntrackConfig
	// Client tunes the API client (--kube-api-qps, --kube-api-burst,
	// --kube-api-content-type, clientConnection).
	Client ClientConfig
	// BindAddress is kube-proxy's --bind-address: an unspecified address of one family
	// makes that family the node's primary one when the Node does not say.
	BindAddress string
	// BindAddressHardFail makes a health or metrics server that cannot bind fatal
	// (--bind-address-hard-fail).
	BindAddressHardFail bool
	// EnableProfiling serves /debug/pprof/ on the metrics address (--profiling).
	EnableProfiling bool
	// OOMScoreAdj is written to /proc/self/oom_score_adj at start (--oom-score-adj);
	// nil leaves it unchanged.
	OOMScoreAdj *int32
	// ConfigSyncPeriod is the informers' resync period (--config-sync-period).
	ConfigSyncPeriod time.Duration
	// InitOnly applies the node settings that need full root privileges (conntrack
	// and the other sysctls) and returns, as kube-proxy --init-only does for an init
	// container.
	InitOnly bool
}

// DetectLocalConfig is kube-proxy's local-traffic detector: how a packet is known to
// come from a pod on this node.
type DetectLocalConfig struct {
	// Mode is "ClusterCIDR", "NodeCIDR", "BridgeInterface" or "InterfaceNamePrefix"
	// (--detect-local-mode); empty means ClusterCIDR.
	Mode string
	// BridgeInterface is the pods' bridge for mode BridgeInterface
	// (--pod-bridge-interface).
	BridgeInterface string
	// InterfaceNamePrefix is the prefix of the pods' host-side interfaces for mode
	// InterfaceNamePrefix (--pod-interface-name-prefix).
	InterfaceNamePrefix string
}

// ConntrackConfig holds kube-proxy's conntrack settings. A nil pointer or a zero
// duration leaves the kernel's value, as in kube-proxy.
type ConntrackConfig struct {
	// MaxPerCore and Min size nf_conntrack_max as max(MaxPerCore×cores, Min)
	// (--conntrack-max-per-core, --conntrack-min); MaxPerCore 0 leaves it.
	MaxPerCore, Min *int32
	// TCPEstablishedTimeout and TCPCloseWaitTimeout set nf_conntrack_tcp_timeout_*
	// (--conntrack-tcp-timeout-established, --conntrack-tcp-timeout-close-wait).
	TCPEstablishedTimeout, TCPCloseWaitTimeout *time.Duration
	// TCPBeLiberal sets nf_conntrack_tcp_be_liberal=1 (--conntrack-tcp-be-liberal);
	// then the ctstate INVALID drop rule is not written (kubernetes PR 120412).
	TCPBeLiberal bool
	// UDPTimeout and UDPStreamTimeout set nf_conntrack_udp_timeout{,_stream}
	// (--conntrack-udp-timeout, --conntrack-udp-timeout-stream).
	UDPTimeout, UDPStreamTimeout time.Duration
}

// ClientConfig tunes the connection to the API server.
type ClientConfig struct {
	// QPS and Burst bound the request rate (--kube-api-qps 5, --kube-api-burst 10).
	QPS   float32
	Burst int32
	// ContentType is the encoding of requests (--kube-api-content-type; protobuf by
	// default); AcceptContentTypes is the Accept header (clientConnection only).
	ContentType, AcceptContentTypes string
	// Master overrides the kubeconfig's API server address (--master).
	Master string
}

// apply sets the client settings that are set on restConfig (zero values keep
// client-go's).
func (c *ClientConfig) apply(restConfig *rest.Config) {
	if c.QPS != 0 {
		restConfig.QPS = c.QPS
	}
	if c.Burst != 0 {
		restConfig.Burst = int(c.Burst)
	}
	if c.ContentType != "" {
		restConfig.ContentType = c.ContentType
	}
	if c.AcceptContentTypes != "" {
		restConfig.AcceptContentTypes = c.AcceptContentTypes
	}
}

// Defaults returns kube-proxy's defaults where they apply.
func Defaults() Config {
	return Config{
		Mode:               "iptables",
		MinSyncPeriod:      time.Second,
		SyncPeriod:         30 * time.Second,
		FullSyncPeriod:     time.Hour,
		HealthzBindAddress: "0.0.0.0:10256",
		MetricsBindAddress: "127.0.0.1:10249",
		IPTablesLockWait:   5 * time.Second,
		CanaryInterval:     10 * time.Second,
		MasqueradeBit:      14,
		ConfigSyncPeriod:   15 * time.Minute,
		Client: ClientConfig{
			QPS:         5,
			Burst:       10,
			ContentType: "application/vnd.kubernetes.protobuf",
		},
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if _, ok := modes[c.Mode]; !ok {
		errs = append(errs, fmt.Errorf("--proxy-mode %q: want %s", c.Mode, strings.Join(ModeNames(), " or ")))
	}
	if err := c.IPVS.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MinSyncPeriod < 0 || c.SyncPeriod <= 0 {
		errs = append(errs, fmt.Errorf("--min-sync-period %s and --sync-period %s must be positive", c.MinSyncPeriod, c.SyncPeriod))
	}
	if c.MinSyncPeriod > c.SyncPeriod {
		errs = append(errs, fmt.Errorf("--min-sync-period %s exceeds --sync-period %s", c.MinSyncPeriod, c.SyncPeriod))
	}
	if _, err := xtables.ParseBackend(c.IPTablesBackend); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateDatapath(); err != nil {
		errs = append(errs, err)
	}
	seen := map[bool]bool{}
	for _, p := range c.ClusterCIDRs {
		if seen[p.Addr().Is4()] {
			errs = append(errs, fmt.Errorf("--cluster-cidr: more than one CIDR of the family of %s", p))
		}
		seen[p.Addr().Is4()] = true
	}
	return errors.Join(errs...)
}

// nodeName returns the configured node name or the host name, lowercased as kubelet
// registers it.
func (c *Config) nodeName() (string, error) {
	if c.NodeName != "" {
		return strings.ToLower(c.NodeName), nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("no --hostname-override and no host name: %w", err)
	}
	return strings.ToLower(host), nil
}

func (c *Config) healthTimeout() time.Duration {
	if c.HealthTimeout > 0 {
		return c.HealthTimeout
	}
	return 2 * c.SyncPeriod
}
