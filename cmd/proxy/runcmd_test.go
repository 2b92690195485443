package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/controller"
	"github.com/switchyard-io/switchyard/pkg/kubeproxyconfig"
)

const configHeader = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"

// fakeDaemon replaces the hooks that touch the node for one test: it records the
// configuration the daemon would have been started with.
type fakeDaemon struct {
	started *controller.Config
}

func installFakes(t *testing.T) *fakeDaemon {
	t.Helper()
	fake := &fakeDaemon{}
	saved := []any{applyLogging, startDaemon, oomScoreAdjPath, cleanup}
	applyLogging = func(c *logsapi.LoggingConfiguration, gate featuregate.FeatureGate) error { return nil }
	startDaemon = func(ctx context.Context, cfg controller.Config) error {
		fake.started = &cfg
		return nil
	}
	oomScoreAdjPath = filepath.Join(t.TempDir(), "oom_score_adj")
	cleanup = func(context.Context, io.Writer, io.Writer) int {
		t.Error("cleanup called")
		return 1
	}
	t.Cleanup(func() {
		applyLogging = saved[0].(func(*logsapi.LoggingConfiguration, featuregate.FeatureGate) error)
		startDaemon = saved[1].(func(context.Context, controller.Config) error)
		oomScoreAdjPath = saved[2].(string)
		cleanup = saved[3].(func(context.Context, io.Writer, io.Writer) int)
	})
	return fake
}

// TestBadConfig checks that each bad configuration gives one line naming the
// problem, exit code 1 (as kube-proxy v1.37 exits), and never starts the daemon, so
// nothing in the kernel or the API server is touched.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"wrong kind", write("kind.yaml", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n"), "kind.yaml: apiVersion kubeproxy.config.k8s.io/v1alpha1, kind KubeletConfiguration: want apiVersion kubeproxy.config.k8s.io/v1alpha1 and kind KubeProxyConfiguration"},
		{"wrong apiVersion", write("version.yaml", "apiVersion: kubeproxy.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n"), "version.yaml: apiVersion kubeproxy.config.k8s.io/v1beta1, kind KubeProxyConfiguration: want"},
		{"bad duration", write("duration.yaml", configHeader+"iptables:\n  syncPeriod: 30\n"), `duration.yaml: field iptables.syncPeriod: want a duration such as "30s": cannot use a JSON number as string`},
		{"bad CIDR", write("cidr.yaml", configHeader+"clusterCIDR: 10.244.0.0/33\n"), `cidr.yaml: invalid configuration: clusterCIDR[0]: invalid value "10.244.0.0/33"`},
		{"kernelspace", write("mode.yaml", configHeader+"mode: kernelspace\n"), `mode.yaml: invalid configuration: mode: invalid value "kernelspace"`},
		{"bad masquerade bit", write("bit.yaml", configHeader+"iptables:\n  masqueradeBit: 32\n"), "bit.yaml: invalid configuration: iptables.masqueradeBit: invalid value 32"},
		{"empty file", write("empty.yaml", ""), "empty.yaml: is empty, want a KubeProxyConfiguration"},
		{"directory", dir, dir + ": is a directory"},
		{"missing file", filepath.Join(dir, "missing.yaml"), "missing.yaml: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := installFakes(t)
			var stdout, stderr bytes.Buffer
			code := run([]string{"--config=" + tc.path, "--hostname-override=node1"}, &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q, want one line containing %q", stderr.String(), tc.want)
			}
			if fake.started != nil {
				t.Errorf("the daemon was started")
			}
		})
	}
}

// TestUnknownFieldGoesOn checks the lenient path end to end: the daemon starts with
// the file's settings, the warning names the field, and the log names the flags the
// file overrides.
func TestUnknownFieldGoesOn(t *testing.T) {
	fake := installFakes(t)
	path := filepath.Join(t.TempDir(), "config.conf")
	if err := os.WriteFile(path, []byte(configHeader+"clusterCIDR: 10.244.0.0/16\nnoSuchField: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr, log bytes.Buffer
	klog.LogToStderr(false)
	klog.SetOutput(&log)
	defer klog.LogToStderr(true)
	// The daemon fake returns at once; the watcher is left to the context.
	code := run([]string{"--config=" + path, "--proxy-mode=ipvs", "--cluster-cidr=10.0.0.0/8"}, &stdout, &stderr)
	klog.Flush()
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		`unknown field "noSuchField" (ignored, as kube-proxy ignores it)`,
		`"Flags ignored because --config is set (as kube-proxy ignores them)" flags=["--cluster-cidr","--proxy-mode"]`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not say %s:\n%s", want, log.String())
		}
	}
	if fake.started == nil || fake.started.ClusterCIDRs[0].String() != "10.244.0.0/16" {
		t.Fatalf("daemon started with %+v, want the file's clusterCIDR", fake.started)
	}
	oom, err := os.ReadFile(oomScoreAdjPath)
	if err != nil || string(oom) != "-999" {
		t.Errorf("oom_score_adj %q (%v), want kube-proxy's -999", oom, err)
	}
}

// TestInvocations checks the command lines that start the daemon: `switchyard run`,
// kube-proxy's command line without a subcommand, and flag errors, which kube-proxy
// exits 1 for.
func TestInvocations(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		wantCode  int
		wantStart bool
	}{
		{"run", []string{"run", "--cluster-cidr=10.0.0.0/8"}, 0, true},
		{"kube-proxy command line", []string{"--cluster-cidr=10.0.0.0/8", "--v=2"}, 0, true},
		{"unknown flag", []string{"--no-such-flag"}, 1, false},
		{"positional argument", []string{"run", "extra"}, 1, false},
		{"help", []string{"run", "--help"}, 0, false},
		// mutation-checked: falling through to the daemon instead of returning
		// cleanup's code fails this row (cleanup not called, daemon started).
		{"cleanup", []string{"--cleanup"}, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := installFakes(t)
			cleaned := false
			if tc.name == "cleanup" {
				cleanup = func(context.Context, io.Writer, io.Writer) int { cleaned = true; return 3 }
				defer func() {
					if !cleaned {
						t.Error("--cleanup did not run the cleanup")
					}
				}()
			}
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr %s", code, tc.wantCode, stderr.String())
			}
			if (fake.started != nil) != tc.wantStart {
				t.Errorf("daemon started: %v, want %v", fake.started != nil, tc.wantStart)
			}
		})
	}
}

// TestWriteConfigTo checks that --write-config-to writes the effective configuration,
// which reads back as the same settings, and starts nothing.
func TestWriteConfigTo(t *testing.T) {
	fake := installFakes(t)
	out := filepath.Join(t.TempDir(), "out.yaml")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--write-config-to=" + out, "--proxy-mode=ipvs", "--ipvs-sync-period=10s", "--cluster-cidr=10.244.0.0/16", "--hostname-override=Node1"}, &stdout, &stderr)
	if code != 0 || fake.started != nil {
		t.Fatalf("exit code %d, started %v: %s", code, fake.started != nil, stderr.String())
	}
	cfg, warnings, err := kubeproxyconfig.Load(out)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("reading back: %v %q", err, warnings)
	}
	if cfg.Mode != "ipvs" || cfg.IPVS.SyncPeriod.Duration.String() != "10s" || cfg.ClusterCIDR != "10.244.0.0/16" || cfg.HostnameOverride != "node1" || !ptr.Equal(cfg.IPTables.LocalhostNodePorts, ptr.To(false)) {
		t.Errorf("wrote %+v", cfg)
	}
}

// TestExitOnConfigChange checks that a running daemon stops with exit code 1 when its
// configuration file is rewritten, as kube-proxy exits so that the DaemonSet restarts
// it with the new file.
// Mutation-checked: returning 0 in the errConfigChanged branch of runWithConfig, or not
// starting the watcher, fails this test.
func TestExitOnConfigChange(t *testing.T) {
	installFakes(t)
	started := make(chan struct{})
	startDaemon = func(ctx context.Context, cfg controller.Config) error {
		close(started)
		<-ctx.Done() // a daemon runs until it is stopped
		return nil
	}
	file := filepath.Join(t.TempDir(), "config.conf")
	if err := os.WriteFile(file, []byte(configHeader+"clusterCIDR: 10.244.0.0/16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() { code <- run([]string{"--config=" + file, "--hostname-override=n1"}, &stdout, &stderr) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not start")
	}
	if err := os.WriteFile(file, []byte(configHeader+"clusterCIDR: 10.245.0.0/16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-code:
		if got != 1 {
			t.Errorf("exit code %d after the file changed, want 1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after the configuration file changed")
	}
}
