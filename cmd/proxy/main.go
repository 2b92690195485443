// Command switchyard is a drop-in replacement for kube-proxy.
//
//	switchyard dry-run -f manifests/examples/   print the rules for a set of manifests
//	switchyard explain --src IP --dst IP:PORT  what this node's rules do with one packet
//	switchyard run --kubeconfig ...              program this node (see README.md)
//	switchyard --config=/var/lib/kube-proxy/config.conf   the same, as kube-proxy is run
//	kube-proxy --config=...                      the same, through a link named kube-proxy
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	args := os.Args[1:]
	if filepath.Base(os.Args[0]) == "kube-proxy" {
		// Invoked through the image's kube-proxy link, with kube-proxy's command line:
		// the DaemonSet of a kubeadm cluster works with only its image changed.
		args = append([]string{"run"}, args...)
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

// usage is printed for `switchyard`, `switchyard help` and unknown commands.
const usage = `switchyard: a drop-in replacement for kube-proxy

Usage:
  switchyard dry-run [flags] -f FILE_OR_DIR...   print the rules switchyard would program
  switchyard run [flags]                         program this node's rules (as root, like kube-proxy)
  switchyard --flag ...                          the same, with kube-proxy's command line (also as kube-proxy)
  switchyard cleanup [--dry-run]                 remove every rule switchyard or kube-proxy created
  switchyard explain --src IP --dst IP:PORT      say what the proxy rules do with one packet
  switchyard version                             print the version

Run 'switchyard COMMAND -h' for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// run dispatches a command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		// kube-proxy's command line has no subcommand: `switchyard --config=F ...`.
		return runDaemon(ctx, args, stdout, stderr)
	}
	switch args[0] {
	case "dry-run":
		return dryRun(ctx, args[1:], stdout, stderr)
	case "run":
		return runDaemon(ctx, args[1:], stdout, stderr)
	case "cleanup":
		return cleanupCommand(ctx, args[1:], stdout, stderr)
	case "explain":
		return explainCommand(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "switchyard", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "switchyard: unknown command %q\n\n%s", args[0], usage)
	return 2
}
