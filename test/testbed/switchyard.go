package testbed

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ports Switchyard binds on a node: kube-proxy's, since it is a drop-in
// replacement and DaemonSet probes and scrapers expect them.
const (
	SwitchyardHealthzPort = KubeProxyHealthzPort
	SwitchyardMetricsPort = KubeProxyMetricsPort
)

var (
	switchyardOnce sync.Once
	switchyardPath string
	switchyardErr  error
)

// SwitchyardBinary returns the path of the switchyard binary (./cmd/proxy),
// built once per test process into .cache/testbed, so every test of a run
// exercises the code of the working tree. Like EchoBinary it builds to a
// temporary name and renames, so test binaries of several packages running
// at once never see a half-written file.
func SwitchyardBinary() (string, error) {
	switchyardOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			switchyardErr = err
			return
		}
		dir := filepath.Join(root, ".cache", "testbed")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			switchyardErr = fmt.Errorf("building switchyard: %w", err)
			return
		}
		// The name carries the working tree: git worktrees of one repository may
		// share .cache (a symlink), and a test must never run another tree's build.
		tree := sha256.Sum256([]byte(root))
		final := filepath.Join(dir, fmt.Sprintf("switchyard-%x", tree[:6]))
		temp := fmt.Sprintf("%s.%d.tmp", final, os.Getpid())
		build := exec.Command("go", "build", "-o", temp, "./cmd/proxy")
		build.Dir = root
		if output, err := build.CombinedOutput(); err != nil {
			switchyardErr = fmt.Errorf("building switchyard: %w\n%s", err, output)
			return
		}
		if err := os.Rename(temp, final); err != nil {
			switchyardErr = fmt.Errorf("building switchyard: %w", err)
			return
		}
		switchyardPath = final
	})
	return switchyardPath, switchyardErr
}

// SwitchyardOptions say how AddSwitchyard runs `switchyard run`.
type SwitchyardOptions struct {
	// Kubeconfig defaults to the cluster's RestrictedKubeconfig: the
	// identity manifests/deploy/rbac.yaml binds, so a test that has not
	// applied those manifests sees Switchyard refused, as it would be in a
	// real cluster.
	Kubeconfig string
	// IPTablesBackend is passed as --iptables-backend; empty means the
	// cluster's backend (Cluster.IPTablesBackend).
	IPTablesBackend string
	// MinSyncPeriod is --min-sync-period; zero means 100ms, so that tests
	// see a change programmed within a fraction of a second.
	MinSyncPeriod time.Duration
	// NoWait returns as soon as the process is started, without waiting for
	// /healthz to answer 200 (for tests of what happens before the first
	// sync).
	NoWait bool
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// AsKubeProxy starts Switchyard exactly as kubeadm starts kube-proxy: through a
	// link named kube-proxy, with only --config=FILE --hostname-override=NODE, where
	// FILE is written by the pinned kube-proxy's --write-config-to with the
	// testbed's settings. The one extra flag is Switchyard's --iptables-backend,
	// which no KubeProxyConfiguration field carries: a real node has kubelet's
	// chains in its backend for "auto" to find, a testbed node has none.
	AsKubeProxy bool
	// LocalhostNodePorts is written as iptables.localhostNodePorts with
	// AsKubeProxy (kube-proxy would write true); false by default, as the flag.
	LocalhostNodePorts bool
	// Capabilities, when not nil, runs Switchyard as UnprivilegedUID (nobody) with
	// only these Linux capabilities ("net_admin", "net_raw"; unprivileged.go), to
	// show what it needs (docs/security.md). Not with AsKubeProxy.
	Capabilities []string
	// PathPrefix, when set, is put first in Switchyard's PATH (before the
	// node's iptables shims), for fault injection: a directory of
	// iptables-nft-restore, iptables-legacy-restore, ... wrappers that
	// Switchyard runs instead of the real programs. Only Switchyard's process
	// sees it; Node.Exec keeps the real programs.
	PathPrefix string
}

// Switchyard is `switchyard run` on a node, as a real process.
type Switchyard struct {
	// Node is the node it proxies for.
	Node *Node
	// HealthzURL and MetricsURL are reachable through Node.HTTPClient.
	HealthzURL, MetricsURL string
	// Args is its command line, binary first.
	Args []string
	// Process is the running switchyard; Restart replaces it.
	Process *Process
	// ConfigPath is its KubeProxyConfiguration file when started AsKubeProxy.
	ConfigPath string

	cluster    *Cluster
	restarts   int
	pathPrefix string
}

// AddSwitchyard runs `switchyard run` in node's namespace with the node's
// name, the cluster CIDRs of both families, healthz and metrics on the node
// IP (kube-proxy's ports), the cluster's iptables backend, conntrack left
// alone and -v=2 (with opts.AsKubeProxy: the same through a config file), and,
// unless opts.NoWait, waits (bounded) until /healthz answers 200, which
// Switchyard does only after every IP family has been synced once.
func (c *Cluster) AddSwitchyard(t testing.TB, node *Node, opts SwitchyardOptions) *Switchyard {
	t.Helper()
	binary, err := SwitchyardBinary()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = c.RestrictedKubeconfig
	}
	if opts.Capabilities != nil {
		if opts.AsKubeProxy {
			t.Fatalf("testbed: switchyard on %s: Capabilities and AsKubeProxy together are not supported", node.Name)
		}
		if opts.Kubeconfig, err = c.unprivilegedKubeconfig(t, opts.Kubeconfig); err != nil {
			t.Fatalf("testbed: switchyard on %s: %v", node.Name, err)
		}
	}
	if opts.IPTablesBackend == "" {
		opts.IPTablesBackend = c.IPTablesBackend
	}
	if opts.MinSyncPeriod == 0 {
		opts.MinSyncPeriod = 100 * time.Millisecond
	}
	proxy := &Switchyard{
		Node:       node,
		HealthzURL: fmt.Sprintf("http://%s:%d/healthz", node.IP, SwitchyardHealthzPort),
		MetricsURL: fmt.Sprintf("http://%s:%d/metrics", node.IP, SwitchyardMetricsPort),
		cluster:    c,
		pathPrefix: opts.PathPrefix,
	}
	// The testbed shares the host's kernel: the conntrack settings are all zero
	// ("leave alone"), since some of them (nf_conntrack_max, the hashsize module
	// parameter) are global to the host.
	settings := []string{
		"--kubeconfig", opts.Kubeconfig,
		"--cluster-cidr", ClusterCIDR,
		"--healthz-bind-address", fmt.Sprintf("%s:%d", node.IP, SwitchyardHealthzPort),
		"--metrics-bind-address", fmt.Sprintf("%s:%d", node.IP, SwitchyardMetricsPort),
		"--conntrack-max-per-core=0", "--conntrack-min=0",
		"--conntrack-tcp-timeout-established=0s", "--conntrack-tcp-timeout-close-wait=0s",
		"--v=2",
	}
	if opts.AsKubeProxy {
		args, configPath, err := c.kubeadmStyleArgs(node, binary, opts, settings)
		if err != nil {
			t.Fatalf("testbed: switchyard on %s: %v", node.Name, err)
		}
		proxy.Args = append(args, opts.ExtraArgs...)
		proxy.ConfigPath = configPath
	} else {
		proxy.Args = append(append([]string{binary, "run", "--hostname-override", node.Name}, settings...),
			append([]string{"--iptables-backend", opts.IPTablesBackend, "--min-sync-period", opts.MinSyncPeriod.String()}, opts.ExtraArgs...)...)
	}
	if opts.Capabilities != nil {
		proxy.Args = unprivilegedArgv(opts.Capabilities, proxy.Args)
	}
	if err := proxy.start(); err != nil {
		t.Fatalf("testbed: switchyard on %s: %v", node.Name, err)
	}
	if !opts.NoWait {
		if err := proxy.WaitHealthy(t.Context(), 60*time.Second); err != nil {
			t.Fatalf("testbed: switchyard on %s: %v", node.Name, err)
		}
	}
	return proxy
}

// kubeadmStyleArgs writes the node's KubeProxyConfiguration with the pinned
// kube-proxy's --write-config-to, links kube-proxy to the switchyard binary, and
// returns kubeadm's command line for it and the configuration file's path.
func (c *Cluster) kubeadmStyleArgs(node *Node, binary string, opts SwitchyardOptions, settings []string) (args []string, configPath string, err error) {
	configPath = filepath.Join(c.Dir, node.Name+"-switchyard-config.conf")
	write := append([]string{"--write-config-to=" + configPath, "--bind-address=" + node.IP,
		"--iptables-min-sync-period=" + opts.MinSyncPeriod.String(),
		fmt.Sprintf("--iptables-localhost-nodeports=%t", opts.LocalhostNodePorts)}, settings...)
	// kube-proxy --write-config-to exits before it touches the kernel or the API
	// server, so it runs outside the node's namespace.
	if output, err := exec.Command(c.tools["kube-proxy"], write...).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("kube-proxy --write-config-to: %w\n%s", err, output)
	}
	linkDir := filepath.Join(c.Dir, node.Name+"-bin")
	if err := os.MkdirAll(linkDir, 0o755); err != nil {
		return nil, "", err
	}
	link := filepath.Join(linkDir, "kube-proxy")
	if err := os.Symlink(binary, link); err != nil && !os.IsExist(err) {
		return nil, "", err
	}
	return []string{link, "--config=" + configPath, "--hostname-override=" + node.Name,
		"--iptables-backend=" + opts.IPTablesBackend}, configPath, nil
}

func (s *Switchyard) start() error {
	name := s.Node.Name + "-switchyard"
	if s.restarts > 0 {
		// A new log file per run keeps the earlier run's log for failures.
		name = fmt.Sprintf("%s-%d", name, s.restarts)
	}
	env := s.Node.Env()
	if s.pathPrefix != "" {
		for i, variable := range env {
			if path, ok := strings.CutPrefix(variable, "PATH="); ok {
				env[i] = "PATH=" + s.pathPrefix + string(os.PathListSeparator) + path
			}
		}
	}
	process, err := s.cluster.startProcess(name, s.Node.Netns, env, s.Args...)
	if err != nil {
		return err
	}
	s.Process = process
	return nil
}

// Restart stops Switchyard with SIGTERM (it leaves its rules in place),
// starts it again with the same command line, and waits until /healthz
// answers 200.
func (s *Switchyard) Restart(ctx context.Context) error {
	if err := s.Process.Stop(); err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	return s.WaitHealthy(ctx, 60*time.Second)
}

// Start starts Switchyard again with the same command line after its process
// ended (stopped, killed, or exited), without waiting for anything.
func (s *Switchyard) Start() error {
	if exited, _ := s.Process.Exited(); !exited {
		return fmt.Errorf("%s is still running (pid %d)", s, s.Process.Pid())
	}
	s.restarts++
	return s.start()
}

// Healthz returns the HTTP status of /healthz, and its body.
func (s *Switchyard) Healthz(ctx context.Context) (int, string, error) {
	return get(ctx, s.Node.HTTPClient(), s.HealthzURL)
}

// WaitHealthy waits until /healthz answers 200, failing early if the process
// exits; the error says what the last attempt saw and ends with the log.
func (s *Switchyard) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	err := poll(ctx, timeout, "switchyard "+s.HealthzURL+" to answer 200", func(ctx context.Context) error {
		if exited, err := s.Process.Exited(); exited {
			return fmt.Errorf("%w: switchyard exited (%v); last log lines:\n%s", errStopPolling, err, s.Process.Tail(20))
		}
		status, body, err := s.Healthz(ctx)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", status, body)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w\nlast log lines:\n%s", err, s.Process.Tail(20))
	}
	return nil
}

// Metrics fetches Switchyard's Prometheus metrics text.
func (s *Switchyard) Metrics(ctx context.Context) (string, error) {
	status, body, err := get(ctx, s.Node.HTTPClient(), s.MetricsURL)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %d", s.MetricsURL, status)
	}
	return body, nil
}

// DebugState fetches Switchyard's state dump, /debug/state on the metrics address.
func (s *Switchyard) DebugState(ctx context.Context) (string, error) {
	url := strings.TrimSuffix(s.MetricsURL, "/metrics") + "/debug/state"
	status, body, err := get(ctx, s.Node.HTTPClient(), url)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %d", url, status)
	}
	return body, nil
}

// Log returns Switchyard's log so far (the current run's).
func (s *Switchyard) Log() (string, error) {
	data, err := os.ReadFile(s.Process.LogPath)
	return string(data), err
}

// String names the proxy in errors.
func (s *Switchyard) String() string {
	return "switchyard on " + s.Node.Name
}
