package main

import (
	"github.com/spf13/cobra"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// The values the shells offer for flags with a fixed set of values; a tab separates a
// value from the description that zsh and fish show.
var (
	proxyModeValues = []string{
		"iptables\tiptables-restore rules (the default)",
		"ipvs\tIPVS virtual servers, ipsets and companion iptables rules",
		"nftables\tkube-proxy's nftables table, with nft transactions",
	}
	detectLocalModeValues = []string{
		string(node.LocalModeClusterCIDR) + "\tsources inside --cluster-cidr (the default)",
		string(node.LocalModeNodeCIDR) + "\tsources inside the Node's spec.podCIDRs",
		string(node.LocalModeBridgeInterface) + "\tpackets from --pod-bridge-interface",
		string(node.LocalModeInterfaceNamePrefix) + "\tpackets from interfaces named --pod-interface-name-prefix*",
	}
)

// ipvsSchedulerValues are the schedulers --ipvs-scheduler accepts.
func ipvsSchedulerValues() []string {
	return append([]string(nil), ipvs.Schedulers...)
}

// registerCompletions makes the shells offer values for the named flags of cmd, and
// no file names.
func registerCompletions(cmd *cobra.Command, values map[string][]string) {
	for name, vals := range values {
		// An error here is a flag name typo: it is only ever a missing completion,
		// and TestFlagValueCompletion checks each one.
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
	}
}
