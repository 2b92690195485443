package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// exampleCommand finds the switchyard or kube-proxy command line in an Example line,
// up to a pipe, a redirection or the end of a process substitution.
var exampleCommand = regexp.MustCompile(`(?:^|[\s(])((?:switchyard|kube-proxy)(?: [^|>)]*)?)`)

// TestExamplesWork checks that every command line in every command's Example is a
// valid command line: its command exists and its flags and arguments parse. The ones
// that touch neither the node nor a cluster (dry-run from files, version, completion,
// help) are run from the repository's root and must exit 0 with output.
// mutation-checked: misspelling --pod-bridge-interface in dryRunExample, or
// `completion bash` as `completion bsh`, fails this test.
func TestExamplesWork(t *testing.T) {
	t.Chdir("../..") // the examples' paths are the repository's, as in the README
	ran := 0
	for path, cmd := range commandPaths(t) {
		for _, line := range strings.Split(cmd.Example, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			m := exampleCommand.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("switchyard %s: example %q runs neither switchyard nor kube-proxy", path, line)
				continue
			}
			words := strings.Fields(m[1])
			t.Run(strings.Join(words, " "), func(t *testing.T) {
				if words[0] == kubeProxyName {
					checkParses(t, newRunCommand(kubeProxyName), words[1:])
					return
				}
				args := daemonArgs(words[1:])
				if !runnableExample(args) {
					root := newRootCommand()
					sub, rest, err := root.Find(args)
					if err != nil {
						t.Fatalf("%v", err)
					}
					checkParses(t, sub, rest)
					return
				}
				var stdout, stderr bytes.Buffer
				if code := run(args, &stdout, &stderr); code != 0 || stdout.Len() == 0 {
					t.Errorf("exit %d, %d bytes on stdout; stderr:\n%s", code, stdout.Len(), stderr.String())
				}
				ran++
			})
		}
	}
	if ran < 5 {
		t.Errorf("ran %d examples, want at least 5 (the dry-runs, version, completion)", ran)
	}
}

// runnableExample says whether an example can run in a unit test: it reads only files
// of the repository and writes only to stdout.
func runnableExample(args []string) bool {
	switch args[0] {
	case "version", "completion", "help":
		return true
	case "dry-run":
		// --diff reads the node's kernel, --kubeconfig a cluster.
		joined := strings.Join(args, " ")
		return !strings.Contains(joined, "--kubeconfig") && !strings.Contains(joined, "--diff")
	case "explain":
		// Offline from the repository's files only; a live explain reads the node.
		joined := " " + strings.Join(args, " ") + " "
		return strings.Contains(joined, " -f ") && !strings.Contains(joined, "--kubeconfig") && !strings.Contains(joined, "--live")
	}
	return false
}

// checkParses checks that args are a valid command line for cmd, without running it.
func checkParses(t *testing.T, cmd *cobra.Command, args []string) {
	t.Helper()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%s: %v", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Fatalf("%s: %v", cmd.CommandPath(), err)
	}
}
