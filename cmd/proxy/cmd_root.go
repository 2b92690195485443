package main

import (
	"github.com/spf13/cobra"
)

const rootLong = `Switchyard is a drop-in replacement for kube-proxy: it programs a node's iptables or
IPVS rules for Services, with kube-proxy's chain names, flags, metrics and semantics.

With flags and no command, switchyard runs the daemon, as kube-proxy does:
'switchyard --config=FILE --hostname-override=NODE' is 'switchyard run --config=FILE
--hostname-override=NODE', and so is any command line given to a link named
kube-proxy. 'switchyard run --help' lists kube-proxy's flags.

Exit codes: 0 success, 1 runtime failure (and bad daemon flags, as kube-proxy),
2 usage error. Without arguments, switchyard prints this help on stderr and exits 2.`

const rootExample = `  # Print the rules the daemon would program for the bundled examples (no root needed)
  switchyard dry-run -f manifests/examples/ --cluster-cidr 10.244.0.0/16,fd00:244::/56

  # Run the daemon with kube-proxy's command line, as kubeadm's DaemonSet runs it
  switchyard --config=/var/lib/kube-proxy/config.conf --hostname-override=node1

  # List what cleanup would remove, without removing it
  switchyard cleanup --dry-run

  # Turn on completion in the current bash shell
  source <(switchyard completion bash)`

// newRootCommand builds `switchyard` and its commands.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		// kube-proxy's flags without a command run the daemon (daemonArgs).
		Use:                   "switchyard [kube-proxy flags]",
		DisableFlagsInUseLine: true,
		Short:                 "A drop-in replacement for kube-proxy",
		Long:                  rootLong,
		Example:               rootExample,
		// Runnable only to refuse an empty command line: no command is a usage error
		// (exit 2, as before the move to cobra), so that `switchyard $CMD` with an
		// empty $CMD fails in scripts. Positional arguments never reach it: cobra
		// reports them as unknown commands.
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			if err := cmd.Help(); err != nil {
				return err
			}
			return &exitError{code: exitUsage}
		},
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true, // ours, with examples: cmd_completion.go
		},
	}
	root.SetFlagErrorFunc(flagError(exitUsage))
	root.SetHelpCommand(newHelpCommand())
	root.AddCommand(
		newRunCommand("run"),
		newDryRunCommand(),
		newCleanupCommand(),
		newExplainCommand(),
		newVersionCommand(),
		newCompletionCommand(),
	)
	return root
}
