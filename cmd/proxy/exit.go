package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, kept from before the move to cobra: scripts and the DaemonSet's restart
// policy rely on them.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure, and the daemon's bad flags (as kube-proxy)
	exitUsage   = 2 // a bad command line
)

// exitError carries a command's exit code through cobra's RunE. An empty message means
// the command has already said why on stderr.
type exitError struct {
	code int
	msg  string
	// hint says how to get help, after msg.
	hint bool
}

func (e *exitError) Error() string { return e.msg }

// exitWith turns a command's exit code into RunE's error: nil for 0.
func exitWith(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// usageError is a bad command line: exit 2 with the message and a pointer to --help.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...), hint: true}
}

// exitCode maps the outcome of cobra's Execute to the process exit code and prints the
// error. Cobra answers -h and --help itself, printing the help to stdout and returning
// no error, so they exit 0; every other error that cobra makes (an unknown command or
// flag, a bad flag value, a wrong number of arguments) is a usage error, exit 2, unless
// the command's FlagErrorFunc or Args has chosen another code (the daemon's are 1,
// kube-proxy's).
func exitCode(cmd *cobra.Command, err error, stderr io.Writer) int {
	var exit *exitError
	switch {
	case err == nil:
		return exitOK
	case !errors.As(err, &exit):
		exit = &exitError{code: exitUsage, msg: err.Error(), hint: true}
	}
	if exit.msg != "" {
		fmt.Fprintf(stderr, "switchyard: %s\n", exit.msg)
	}
	if exit.hint && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exit.code
}

// flagError is every command's FlagErrorFunc: a usage error with exit code code. Go's
// flag package, which switchyard used before, also took -mode for --mode; pflag reads
// it as the shorthands -m -o -d -e, so the error says which flag was meant.
func flagError(code int) func(*cobra.Command, error) error {
	return func(cmd *cobra.Command, err error) error {
		msg := err.Error()
		var notExist *pflag.NotExistError
		if errors.As(err, &notExist) {
			name, _, _ := strings.Cut(notExist.GetSpecifiedShortnames(), "=")
			if len(name) > 1 && cmd.Flags().Lookup(name) != nil {
				msg += fmt.Sprintf(" (flags are spelled with two dashes: --%s)", name)
			}
		}
		return &exitError{code: code, msg: msg, hint: true}
	}
}
