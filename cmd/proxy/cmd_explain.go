package main

import (
	"github.com/spf13/cobra"
)

const explainLong = `Say, in words, what the proxy rules do with one packet: the Service and port it
matches (or that none does), each chain it goes through, the endpoints it can reach with
the chance of each, whether it is masqueraded and why, whether session affinity applies,
and why it is dropped or rejected when it is. See docs/explain.md.

Offline, with -f or --kubeconfig: the rules are rendered from the objects exactly as
dry-run renders them (same inputs, same flags). Live, when neither is given or with
--live: this node's rules are read with iptables-save (read-only; run it in the node's
network namespace), its addresses from its interfaces (or --node-ip); -f or
--kubeconfig then only name the Services, pods and nodes behind the endpoints.

With --mode ipvs the answer comes from IPVS mode's state: the virtual server, its
scheduler and its real servers with their weights, and the companion iptables rules
and ipsets that masquerade, filter source ranges and refuse unknown ports. Live, the
IPVS table is read over netlink and the ipsets with the ipset program.

With --mode nftables the table is rendered as dry-run --mode nftables renders it
and the packet is traced through its base chains in hook and priority order: the
chains and rules it hits, the numgen choice of endpoint (every map entry is a
candidate) and the verdict. Live, the table is read with nft list table (kube-proxy's
table only).

Exit codes: 0 when the packet gets through (delivered, or not for a Service and left
untouched), 1 when it is dropped or rejected or the rules cannot be read, 2 for usage
errors.`

const explainExample = `  # A pod reaching a cluster IP, with the bundled examples
  switchyard explain -f manifests/examples/ --cluster-cidr 10.244.0.0/16 --src 10.244.1.99 --dst 10.96.10.10:80

  # An outside client reaching a node port, as JSON
  switchyard explain -f manifests/examples/ --src 192.0.2.99 --dst 192.168.10.11:30443 --from outside -o json

  # On a node: what its rules do with a UDP packet the node itself sends
  switchyard explain --src 10.0.0.5 --dst 10.96.0.10:53 --proto udp --from node

  # The same packet in IPVS mode, with the lc scheduler
  switchyard explain -f manifests/examples/ --cluster-cidr 10.244.0.0/16 --mode ipvs --ipvs-scheduler lc --src 10.244.1.99 --dst 10.96.10.10:80

  # The same packet in nftables mode
  switchyard explain -f manifests/examples/ --cluster-cidr 10.244.0.0/16 --mode nftables --src 10.244.1.99 --dst 10.96.10.10:80

  # On a node, naming the pods behind the endpoints from the cluster
  switchyard explain --live --kubeconfig ~/.kube/config --node node1 --src 10.244.1.5 --dst 10.96.0.1:443`

// newExplainCommand builds `switchyard explain`.
func newExplainCommand() *cobra.Command {
	var opts dryRunOptions
	var eo explainOptions
	cmd := &cobra.Command{
		Use:     "explain --src IP --dst IP:PORT [--proto tcp|udp|sctp] [--from pod|node|outside] [-o json] [-f FILE_OR_DIR...]",
		Short:   "Say what the proxy rules do with one packet",
		Long:    explainLong,
		Example: explainExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.files = append(opts.files, args...)
			return exitWith(explainPacket(cmd.Context(), &opts, &eo, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	fs := cmd.Flags()
	opts.register(fs)
	eo.registerExplain(fs)
	eo.ipvs = registerIPVSDryRun(fs)
	registerCompletions(cmd, map[string][]string{
		"mode":              {"iptables", "ipvs", "nftables"},
		"ipvs-scheduler":    ipvsSchedulerValues(),
		"proto":             {"tcp", "udp", "sctp"},
		"from":              {"pod\ta pod on this node", "node\ta process on the node", "outside\tanother machine"},
		"output":            {"text", "json"},
		"iptables-backend":  {"auto\tthe backend holding KUBE- chains", "nft\tiptables-nft", "legacy\tiptables-legacy"},
		"ip-family":         {"auto\tevery family the node has addresses in", "ipv4", "ipv6"},
		"detect-local-mode": detectLocalModeValues,
	})
	return cmd
}
