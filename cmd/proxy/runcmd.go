package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/controller"
	"github.com/switchyard-io/switchyard/pkg/kubeproxyconfig"
)

// Hooks the tests replace: logging can be applied once per process, and the daemon
// and the OOM score touch the node.
var (
	applyLogging = func(c *logsapi.LoggingConfiguration, gate featuregate.FeatureGate) error {
		return logsapi.ValidateAndApply(c, gate)
	}
	startDaemon = func(ctx context.Context, cfg controller.Config) error {
		c, err := controller.New(cfg)
		if err != nil {
			return err
		}
		return c.Run(ctx)
	}
	oomScoreAdjPath = "/proc/self/oom_score_adj"
	cleanup         = func(ctx context.Context, stdout, stderr io.Writer) int {
		return cleanupCommand(ctx, &cleanupOptions{backend: "all"}, stdout, stderr)
	}
)

// errConfigChanged ends the daemon when its configuration file changes.
var errConfigChanged = errors.New("configuration file changed")

// runDaemon implements `switchyard run` and kube-proxy's command line: program this
// node until SIGTERM, with the options parsed from fs. Bad flags and bad configuration
// are refused, with exit code 1 as kube-proxy's, before anything touches the kernel or
// the API server.
func runDaemon(ctx context.Context, opts *kubeproxyconfig.Options, fs *pflag.FlagSet, stdout, stderr io.Writer) int {
	resolved, err := opts.Complete(fs)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %s\n", oneLine(err))
		return 1
	}
	if err := applyLogging(&resolved.KubeProxy.Logging, resolved.FeatureGate); err != nil {
		fmt.Fprintf(stderr, "switchyard: logging: %s\n", oneLine(err))
		return 1
	}
	logger := klog.Background()
	ctx = klog.NewContext(ctx, logger)
	logResolved(logger, opts, resolved)

	switch {
	case opts.WriteConfigTo != "":
		if err := writeConfig(opts.WriteConfigTo, resolved); err != nil {
			fmt.Fprintf(stderr, "switchyard: %s\n", oneLine(err))
			return 1
		}
		logger.Info("Wrote configuration", "file", opts.WriteConfigTo)
		return 0
	case opts.Cleanup:
		return cleanup(ctx, stdout, stderr)
	}
	return runWithConfig(ctx, opts, resolved)
}

// runWithConfig runs the daemon, and ends it when the configuration file changes.
func runWithConfig(ctx context.Context, opts *kubeproxyconfig.Options, resolved *kubeproxyconfig.Resolved) int {
	logger := klog.FromContext(ctx)
	cfg := resolved.Controller
	if !cfg.InitOnly && cfg.OOMScoreAdj != nil {
		// As kube-proxy: a failure (no privilege to lower it) is not fatal.
		if err := os.WriteFile(oomScoreAdjPath, []byte(strconv.Itoa(int(*cfg.OOMScoreAdj))), 0o644); err != nil {
			logger.V(2).Info("Failed to apply OOM score", "err", err)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if opts.ConfigFile != "" {
		changed, err := kubeproxyconfig.WatchFile(ctx, opts.ConfigFile, resolved.ConfigData)
		if err != nil {
			logger.Error(err, "Cannot watch the configuration file")
			return 1
		}
		go func() {
			select {
			case err := <-changed:
				logger.Info("Configuration file changed; exiting so that the DaemonSet restarts Switchyard with it", "file", opts.ConfigFile, "reason", err.Error())
				cancel(fmt.Errorf("%w: %w", errConfigChanged, err))
			case <-ctx.Done():
			}
		}()
	}
	err := startDaemon(ctx, cfg)
	if cause := context.Cause(ctx); errors.Is(cause, errConfigChanged) {
		logger.Error(cause, "Switchyard stopped")
		return 1
	}
	if err != nil {
		logger.Error(err, "Switchyard stopped")
		return 1
	}
	return 0
}

// logResolved logs, once at start, what the configuration dropped, ignores or does
// differently from kube-proxy.
func logResolved(logger klog.Logger, opts *kubeproxyconfig.Options, resolved *kubeproxyconfig.Resolved) {
	if opts.ConfigFile != "" {
		logger.Info("Using configuration file", "file", opts.ConfigFile)
	}
	if len(resolved.IgnoredFlags) > 0 {
		logger.Info("Flags ignored because --config is set (as kube-proxy ignores them)", "flags", resolved.IgnoredFlags)
	}
	for _, w := range resolved.Warnings {
		klog.Warning(w)
	}
	for _, n := range resolved.Notices {
		logger.Info(n)
	}
}

// writeConfig writes the effective configuration as KubeProxyConfiguration YAML.
func writeConfig(path string, resolved *kubeproxyconfig.Resolved) error {
	var buf bytes.Buffer
	if err := kubeproxyconfig.Encode(&buf, resolved.KubeProxy); err != nil {
		return fmt.Errorf("--write-config-to %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--write-config-to: %w", err)
	}
	return nil
}

// oneLine joins a multi-line error (errors.Join) into one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
