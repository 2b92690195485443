package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newVersionCommand builds `switchyard version`.
func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Long: `Print switchyard's version, as set when it was built ("dev" for a build from a
working tree). 'switchyard --version' and 'kube-proxy --version' print the same.`,
		Example: `  # Print the version
  switchyard version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "switchyard", version)
			return nil
		},
	}
}
