package testbed

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ports of the reference kube-proxy: its defaults, which Switchyard shares.
// Both also program the same kernel tables, so a test runs them on
// different nodes rather than side by side.
const (
	KubeProxyHealthzPort = 10256
	KubeProxyMetricsPort = 10249
)

// KubeProxy is the reference kube-proxy v1.37.2 running on a node.
type KubeProxy struct {
	// Node is the node it proxies for.
	Node *Node
	// Mode is its --proxy-mode: "iptables", "ipvs" or "nftables".
	Mode string
	// HealthzURL and MetricsURL are reachable through Node.HTTPClient.
	HealthzURL, MetricsURL string
	// ConfigPath is its KubeProxyConfiguration file.
	ConfigPath string
	// Process is the running kube-proxy.
	Process *Process
}

// kubeProxyConfig sets everything through the config file, since kube-proxy
// ignores most flags once --config is given. The conntrack settings are all
// zero ("leave alone"): some of them (nf_conntrack_max, the hashsize module
// parameter) are global to the host, which the testbed must never change.
const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %q
hostnameOverride: %q
bindAddress: %q
clusterCIDR: %q
mode: %q
healthzBindAddress: %q
metricsBindAddress: %q
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`

// AddKubeProxy runs kube-proxy in node's namespace in the given mode, as
// KubeProxyUser, with --hostname-override=node name and the cluster CIDR,
// healthz and metrics bound to the node IP, and waits (bounded) until
// /healthz answers 200, which kube-proxy does only after its first sync, and
// in iptables and nftables modes until both IP families are synced.
func (c *Cluster) AddKubeProxy(t testing.TB, node *Node, mode string) *KubeProxy {
	t.Helper()
	proxy, err := c.addKubeProxy(node, mode, "")
	if err != nil {
		t.Fatalf("testbed: kube-proxy on %s: %v", node.Name, err)
	}
	return proxy
}

// AddKubeProxyWithConfig is AddKubeProxy with extraConfig (top-level
// KubeProxyConfiguration YAML, e.g. "featureGates:\n  X: true\n") appended to
// its configuration file.
func (c *Cluster) AddKubeProxyWithConfig(t testing.TB, node *Node, mode, extraConfig string) *KubeProxy {
	t.Helper()
	proxy, err := c.addKubeProxy(node, mode, extraConfig)
	if err != nil {
		t.Fatalf("testbed: kube-proxy on %s: %v", node.Name, err)
	}
	return proxy
}

func (c *Cluster) addKubeProxy(node *Node, mode, extraConfig string) (*KubeProxy, error) {
	proxy := &KubeProxy{
		Node:       node,
		Mode:       mode,
		HealthzURL: fmt.Sprintf("http://%s:%d/healthz", node.IP, KubeProxyHealthzPort),
		MetricsURL: fmt.Sprintf("http://%s:%d/metrics", node.IP, KubeProxyMetricsPort),
		ConfigPath: filepath.Join(c.Dir, node.Name+"-kube-proxy.yaml"),
	}
	config := fmt.Sprintf(kubeProxyConfig, c.KubeProxyKubeconfig, node.Name, node.IP, ClusterCIDR, mode,
		fmt.Sprintf("%s:%d", node.IP, KubeProxyHealthzPort), fmt.Sprintf("%s:%d", node.IP, KubeProxyMetricsPort)) + extraConfig
	if err := os.WriteFile(proxy.ConfigPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	process, err := c.startProcess(node.Name+"-kube-proxy", node.Netns, node.Env(),
		c.tools["kube-proxy"], "--config", proxy.ConfigPath, "--v=2")
	if err != nil {
		return nil, err
	}
	proxy.Process = process

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := node.HTTPClient()
	if err := poll(ctx, 90*time.Second, "kube-proxy "+proxy.HealthzURL+" to answer 200", func(ctx context.Context) error {
		if exited, err := process.Exited(); exited {
			return fmt.Errorf("%w: kube-proxy exited (%v); last log lines:\n%s", errStopPolling, err, process.Tail(20))
		}
		status, body, err := get(ctx, client, proxy.HealthzURL)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", status, body)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%w\nlast log lines:\n%s", err, process.Tail(20))
	}
	// kube-proxy answers /healthz 200 as soon as its first sync of either
	// family is done, but syncs IPv4 and IPv6 one after the other: a
	// connection to an IPv6 service IP made in between gets a conntrack
	// entry without DNAT and hangs until it expires. Its own log (-v=2)
	// says when each family is done.
	if mode == "iptables" || mode == "nftables" {
		for _, family := range []string{"IPv4", "IPv6"} {
			line := fmt.Sprintf(`"SyncProxyRules complete" ipFamily="%s"`, family)
			if err := process.waitForLog(ctx, line, 30*time.Second); err != nil {
				return nil, err
			}
		}
	}
	return proxy, nil
}

// Metrics fetches kube-proxy's Prometheus metrics text.
func (p *KubeProxy) Metrics(ctx context.Context) (string, error) {
	status, body, err := get(ctx, p.Node.HTTPClient(), p.MetricsURL)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %d", p.MetricsURL, status)
	}
	return body, nil
}

func get(ctx context.Context, client *http.Client, url string) (int, string, error) {
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	response, err := client.Do(request)
	if err != nil {
		return 0, "", err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, 16<<20))
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	return response.StatusCode, strings.TrimSpace(string(body)), nil
}
