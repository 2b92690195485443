// Command switchyard is a drop-in replacement for kube-proxy.
//
//	switchyard dry-run -f manifests/examples/   print the rules for a set of manifests
//	switchyard run --kubeconfig ...              program this node (see README.md)
//	switchyard explain --src IP --dst IP:PORT   what this node's rules do with one packet
//	switchyard --config=/var/lib/kube-proxy/config.conf   the same, as kube-proxy is run
//	kube-proxy --config=...                      the same, through a link named kube-proxy
//	switchyard completion bash|zsh               shell completion
//
// The command line is built with spf13/cobra and pflag, as kube-proxy's is; each
// command's construction is in its own cmd_*.go file, and the exit codes are mapped in
// exit.go: 0 ok, 1 runtime failure, 2 usage error (1 for the daemon's flags, as
// kube-proxy).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(execute(os.Args[0], os.Args[1:], os.Stdout, os.Stderr))
}

// kubeProxyName is the name of the link to switchyard that the image ships, so that a
// kube-proxy DaemonSet works with only its image changed.
const kubeProxyName = "kube-proxy"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// execute runs the command line of a process started as argv0 and returns its exit
// code. Through a link named kube-proxy the command line is kube-proxy's: the daemon
// alone, with its flags, and `kube-proxy --help` lists them as kube-proxy does.
func execute(argv0 string, args []string, stdout, stderr io.Writer) int {
	if filepath.Base(argv0) == kubeProxyName {
		// mutation-checked: dropping this branch fails TestKubeProxyLink ("no
		// arguments" shows switchyard's help and exits 2, "--help" lists the
		// commands, "argument run" runs the daemon).
		return executeCommand(newRunCommand(kubeProxyName), args, stdout, stderr)
	}
	return run(args, stdout, stderr)
}

// run runs switchyard's command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return executeCommand(newRootCommand(), daemonArgs(args), stdout, stderr)
}

// daemonArgs turns kube-proxy's command line, which has no subcommand
// (`switchyard --config=F --hostname-override=N`), into `switchyard run ...`, so that
// the flags keep exactly kube-proxy's meaning. -h and --help alone are the root's
// help, which lists the commands.
// mutation-checked: not prefixing run fails TestBadConfig and TestInvocations;
// prefixing it for -h and --help too fails TestRootHelp and TestHelp.
func daemonArgs(args []string) []string {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		return append([]string{"run"}, args...)
	}
	return args
}

// executeCommand runs cmd with args until SIGINT or SIGTERM and maps the outcome to an
// exit code.
func executeCommand(cmd *cobra.Command, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if args == nil {
		// cobra reads os.Args when given nil.
		args = []string{}
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	ran, err := cmd.ExecuteContextC(ctx)
	return exitCode(ran, err, stderr)
}
