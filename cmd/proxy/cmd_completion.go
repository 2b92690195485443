package main

import (
	"slices"

	"github.com/spf13/cobra"
)

const completionLong = `Print a completion script for bash, zsh, fish or PowerShell. It completes commands,
flags and the values of flags that take one of a few words (--mode, --proxy-mode,
--detect-local-mode, --ipvs-scheduler, --iptables-backend...); the script asks
switchyard itself (the hidden '__complete' command), so it stays right across upgrades.

bash needs the bash-completion package for the installed script; zsh needs compinit
(run 'autoload -U compinit; compinit' once in ~/.zshrc).`

const completionExample = `  # Complete in the current bash shell
  source <(switchyard completion bash)

  # Complete in every bash shell (with the bash-completion package)
  switchyard completion bash > /etc/bash_completion.d/switchyard

  # Complete in every zsh shell: a file named _switchyard in a directory on $fpath
  switchyard completion zsh > "${fpath[1]}/_switchyard"`

// newCompletionCommand builds `switchyard completion SHELL` on cobra's generators.
func newCompletionCommand() *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish|powershell",
		Short:     "Print a shell completion script",
		Long:      completionLong,
		Example:   completionExample,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(cmd.ValidArgs, args[0]) {
				return usageError("completion needs one shell: bash, zsh, fish or powershell; got %q", args)
			}
			return nil
		},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return writeFailure(root.GenBashCompletionV2(out, true))
			case "zsh":
				return writeFailure(root.GenZshCompletion(out))
			case "fish":
				return writeFailure(root.GenFishCompletion(out, true))
			default:
				return writeFailure(root.GenPowerShellCompletionWithDesc(out))
			}
		},
	}
}

// writeFailure makes a failure to write the output a runtime failure (exit 1), not a
// usage error.
func writeFailure(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitFailure, msg: "writing output: " + err.Error()}
}
