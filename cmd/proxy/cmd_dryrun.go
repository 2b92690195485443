package main

import (
	"github.com/spf13/cobra"
)

const dryRunLong = `Print exactly the rules the daemon would program on a node, from manifest files or a
live cluster, with no root and no change to anything.

Input: Services, EndpointSlices and optionally the Node, as YAML or JSON; multi-document
files, 'kind: List', and directories (walked for .yaml, .yml and .json); - reads stdin.
With --kubeconfig they are listed from a cluster instead.

Output: for each IP family the node has, a comment header listing the jumps from the
built-in chains that the daemon ensures, then the iptables-restore --noflush (or
ip6tables-restore) input. With --mode ipvs: the IPVS table (ipvsadm -Sn), the addresses
on kube-ipvs0, the ipsets (ipset save) and the companion iptables-restore input.

With --diff, on a live node: what the next full sync would change, as a unified diff per
family and table of the rules Switchyard owns (and in IPVS mode of the IPVS table, the
addresses on kube-ipvs0 and the ipsets), from the kernel's (read, never written) to the
synced ones; nothing is printed when the kernel is in sync. --config FILE renders with
the daemon's KubeProxyConfiguration; flags given explicitly win. See docs/dry-run-diff.md.

Bad objects are reported on stderr with their file, document and line, and never stop
the others. Exit codes: 0 when something was rendered, 1 when nothing usable could be
read, 2 for bad flags. With --diff: 0 in sync, 1 out of sync, 2 for an error.`

const dryRunExample = `  # The rules for the bundled examples, IPv4 then IPv6
  switchyard dry-run -f manifests/examples/ --cluster-cidr 10.244.0.0/16,fd00:244::/56

  # Only IPv4, checked by the kernel's own parser
  switchyard dry-run -f manifests/examples/ --ip-family ipv4 | iptables-restore --test

  # IPVS mode, with the Maglev scheduler
  switchyard dry-run -f manifests/examples/ --mode ipvs --ipvs-scheduler mh

  # As a node that tells pod traffic by its bridge
  switchyard dry-run -f manifests/examples/ --detect-local-mode BridgeInterface --pod-bridge-interface cbr0

  # From a live cluster, for one of its nodes
  switchyard dry-run --kubeconfig ~/.kube/config --node node1

  # On a node: would the next full sync change anything? (exit 1 if so; a monitoring probe)
  switchyard dry-run --diff --config /var/lib/kube-proxy/config.conf --node "$NODE_NAME"`

// newDryRunCommand builds `switchyard dry-run`.
func newDryRunCommand() *cobra.Command {
	var opts dryRunOptions
	var ipvsOpts *ipvsDryRunOptions
	var diffOpts *diffDryRunOptions
	cmd := &cobra.Command{
		Use:     "dry-run [-f FILE_OR_DIR]... [FILE_OR_DIR...]",
		Short:   "Print the rules switchyard would program, from manifests or a cluster",
		Long:    dryRunLong,
		Example: dryRunExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.files = append(opts.files, args...)
			given := cmd.Flags().Changed
			if diffOpts.diff {
				return exitWith(dryRunDiff(cmd.Context(), &opts, ipvsOpts, diffOpts, given, cmd.OutOrStdout(), cmd.ErrOrStderr()))
			}
			if code := applyConfigFlag(&opts, ipvsOpts, diffOpts, given, cmd.ErrOrStderr()); code != 0 {
				return exitWith(code)
			}
			return exitWith(dryRun(cmd.Context(), &opts, ipvsOpts, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	fs := cmd.Flags()
	opts.register(fs)
	ipvsOpts = registerIPVSDryRun(fs)
	diffOpts = registerDiffDryRun(fs)
	registerCompletions(cmd, map[string][]string{
		"mode":              proxyModeValues,
		"iptables-backend":  {"auto\tthe backend holding KUBE- chains", "nft", "legacy"},
		"ip-family":         {"auto\tevery family the node has addresses in", "ipv4", "ipv6"},
		"detect-local-mode": detectLocalModeValues,
		"ipvs-scheduler":    ipvsSchedulerValues(),
		"nodeport-addresses": {"all\tevery local address", "primary\tthe node's primary addresses",
			"localhost\t127.0.0.1 and ::1"},
	})
	return cmd
}
