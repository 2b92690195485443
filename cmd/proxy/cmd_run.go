package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/switchyard-io/switchyard/pkg/kubeproxyconfig"
)

const runLong = `Program this node's rules until SIGTERM, as kube-proxy does.

The flags are kube-proxy v1.37's, with its names, defaults and meanings, plus a few of
Switchyard's own (their help starts with "Switchyard:"). The same command line works
without the command ('switchyard --config=FILE ...') and through a link named
kube-proxy, so a kube-proxy DaemonSet runs Switchyard with only its image changed.

With --config FILE (a KubeProxyConfiguration), the other flags are ignored except
--hostname-override, --master, --cleanup, --init-only, --write-config-to, the logging
flags and Switchyard's own flags; the ignored ones are named in the log. Switchyard
exits when the file changes, so that the DaemonSet restarts it with the new file.

Bad flags or a bad configuration exit 1, as kube-proxy, before anything touches the
kernel or the API server.`

const runExample = `  # As kubeadm's DaemonSet runs kube-proxy (the image links kube-proxy to switchyard)
  kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=node1

  # The same command line, given to switchyard without a command
  switchyard --config=/var/lib/kube-proxy/config.conf --hostname-override=node1

  # Without a configuration file: kube-proxy's flags
  switchyard run --kubeconfig /var/lib/kube-proxy/kubeconfig --hostname-override node1 --cluster-cidr 10.244.0.0/16 --proxy-mode ipvs

  # Write the effective configuration as a KubeProxyConfiguration file, and exit
  switchyard run --proxy-mode ipvs --cluster-cidr 10.244.0.0/16 --write-config-to /tmp/kube-proxy.conf`

// newRunCommand builds the daemon's command: `switchyard run`, or the whole command
// line of the kube-proxy link when use is "kube-proxy". The flags are registered on
// cobra's pflag.FlagSet by pkg/kubeproxyconfig, so parsing them is kube-proxy's (which
// is a cobra command too), and the shells complete them.
func newRunCommand(use string) *cobra.Command {
	opts := kubeproxyconfig.NewOptions()
	var printVersion bool
	cmd := &cobra.Command{
		Use:     use,
		Short:   "Program this node's rules until SIGTERM, with kube-proxy's flags",
		Long:    runLong,
		Example: runExample,
		// As kube-proxy's command: positional arguments are refused, with exit code 1.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &exitError{code: exitFailure, msg: fmt.Sprintf("%s takes no arguments, got %q", cmd.Name(), args), hint: true}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if printVersion {
				fmt.Fprintln(cmd.OutOrStdout(), "switchyard", version)
				return nil
			}
			return exitWith(runDaemon(cmd.Context(), opts, cmd.Flags(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	fs := cmd.Flags()
	opts.AddFlags(fs)
	fs.BoolVar(&printVersion, "version", false, "Print the version and exit.")
	// kube-proxy exits 1 on a bad flag (its cobra RunE error), not 2.
	cmd.SetFlagErrorFunc(flagError(exitFailure))
	_ = cmd.MarkFlagFilename("config", "yaml", "yml", "json")
	registerCompletions(cmd, map[string][]string{
		"proxy-mode":        proxyModeValues,
		"mode":              proxyModeValues,
		"detect-local-mode": detectLocalModeValues,
		"ipvs-scheduler":    ipvsSchedulerValues(),
		"iptables-backend":  {"auto\tthe backend the host's rules are in", "nft\tiptables-nft", "legacy\tiptables-legacy"},
		"logging-format":    {"text", "json"},
	})
	return cmd
}
