package main

import (
	"github.com/spf13/cobra"
)

const cleanupLong = `Remove every chain, jump, ipset and IPVS virtual server that Switchyard, or
kube-proxy in iptables or IPVS mode, created, and the kube-proxy nftables tables (ip and
ip6) of nftables mode, and nothing else: other programs' rules and tables, kubelet's
KUBE-FIREWALL and foreign IPVS services stay.

It works offline from the kernel's state, is idempotent, prints what it removes, and
exits 1 if anything it owns is still there afterwards. Use it after switching modes or
iptables backends. It needs root, as kube-proxy --cleanup does (which runs it too).`

const cleanupExample = `  # List what would be removed, remove nothing
  switchyard cleanup --dry-run

  # Remove Switchyard's and kube-proxy's rules from both iptables backends
  switchyard cleanup

  # Only from iptables-legacy
  switchyard cleanup --iptables-backend legacy`

// newCleanupCommand builds `switchyard cleanup`.
func newCleanupCommand() *cobra.Command {
	var opts cleanupOptions
	cmd := &cobra.Command{
		Use:     "cleanup",
		Short:   "Remove every rule Switchyard or kube-proxy created",
		Long:    cleanupLong,
		Example: cleanupExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitWith(cleanupCommand(cmd.Context(), &opts, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	opts.register(cmd.Flags())
	registerCompletions(cmd, map[string][]string{
		"iptables-backend": {"all\tnft and legacy", "nft\tiptables-nft", "legacy\tiptables-legacy"},
	})
	return cmd
}
