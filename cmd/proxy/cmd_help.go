package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// newHelpCommand builds `switchyard help [COMMAND]`. It replaces cobra's, which exits
// 0 for a topic it does not know; an unknown command is a usage error here as
// everywhere else.
// mutation-checked: without SetHelpCommand, TestUsageErrors ("help: unknown command")
// fails; without InitDefaultHelpFlag, TestHelp ("help version": no Flags section).
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long: `Print a command's help: what it does, its usage, examples and flags; the same as
'switchyard COMMAND --help'. Without a command, the list of commands.`,
		Example: `  # The flags and examples of dry-run
  switchyard help dry-run`,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			parent, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range parent.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			topic, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return &exitError{code: exitUsage, msg: fmt.Sprintf("no help for %q: 'switchyard --help' lists the commands", strings.Join(args, " "))}
			}
			// As cobra's help command: the topic has not run, so its -h flag is
			// not yet defined.
			topic.InitDefaultHelpFlag()
			return topic.Help()
		},
	}
}
