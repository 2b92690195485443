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

Bad objects are reported on stderr with their file, document and line, and never stop
the others. Exit codes: 0 when something was rendered, 1 when nothing usable could be
read, 2 for bad flags.`

const dryRunExample = `  # The rules for the bundled examples, IPv4 then IPv6
  switchyard dry-run -f manifests/examples/ --cluster-cidr 10.244.0.0/16,fd00:244::/56

  # Only IPv4, checked by the kernel's own parser
  switchyard dry-run -f manifests/examples/ --ip-family ipv4 | iptables-restore --test

  # IPVS mode, with the Maglev scheduler
  switchyard dry-run -f manifests/examples/ --mode ipvs --ipvs-scheduler mh

  # As a node that tells pod traffic by its bridge
  switchyard dry-run -f manifests/examples/ --detect-local-mode BridgeInterface --pod-bridge-interface cbr0

  # From a live cluster, for one of its nodes
  switchyard dry-run --kubeconfig ~/.kube/config --node node1`

// newDryRunCommand builds `switchyard dry-run`.
func newDryRunCommand() *cobra.Command {
	var opts dryRunOptions
	var ipvsOpts *ipvsDryRunOptions
	cmd := &cobra.Command{
		Use:     "dry-run [-f FILE_OR_DIR]... [FILE_OR_DIR...]",
		Short:   "Print the rules switchyard would program, from manifests or a cluster",
		Long:    dryRunLong,
		Example: dryRunExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.files = append(opts.files, args...)
			return exitWith(dryRun(cmd.Context(), &opts, ipvsOpts, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	fs := cmd.Flags()
	opts.register(fs)
	ipvsOpts = registerIPVSDryRun(fs)
	registerCompletions(cmd, map[string][]string{
		"mode":              proxyModeValues,
		"ip-family":         {"auto\tevery family the node has addresses in", "ipv4", "ipv6"},
		"detect-local-mode": detectLocalModeValues,
		"ipvs-scheduler":    ipvsSchedulerValues(),
		"nodeport-addresses": {"all\tevery local address", "primary\tthe node's primary addresses",
			"localhost\t127.0.0.1 and ::1"},
	})
	return cmd
}
