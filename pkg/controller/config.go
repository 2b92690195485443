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

	"github.com/switchyard-io/switchyard/pkg/iptables"
)

// Config is the daemon's configuration; flags fill it with kube-proxy's names.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; empty means in-cluster config.
	Kubeconfig string
	// NodeName is this node's name (--hostname-override); empty means the host name.
	NodeName string
	// Mode is the proxy mode; only "iptables" is implemented.
	Mode string
	// ClusterCIDRs are the pod ranges, at most one per family (--cluster-cidr).
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll SNATs all traffic to service IPs (--masquerade-all).
	MasqueradeAll bool
	// NodePortAddresses limits node ports to node addresses in these CIDRs
	// (--nodeport-addresses); empty means all.
	NodePortAddresses []netip.Prefix
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
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Mode != "iptables" && c.Mode != "ipvs" {
		errs = append(errs, fmt.Errorf("--proxy-mode %q: want iptables or ipvs", c.Mode))
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
	if _, err := iptables.ParseBackend(c.IPTablesBackend); err != nil {
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
