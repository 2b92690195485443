// Package completion checks switchyard's shell completion scripts in the real shells
// (bash with the bash-completion package, zsh), which hack/ci-deps.sh installs; it
// lives under test/ so that `make test` needs neither. cmd/proxy's
// TestFlagValueCompletion checks the candidates themselves.
package completion

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// switchyard returns the switchyard binary built from this tree.
func switchyard(t *testing.T) string {
	t.Helper()
	bin, err := testbed.SwitchyardBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// completionScript writes `switchyard completion SHELL` to a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(switchyard(t), "completion", shell)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("completion %s: %v: %s", shell, err, stderr.String())
	}
	path := filepath.Join(t.TempDir(), "switchyard."+shell)
	if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lookShell finds a shell, which hack/ci-deps.sh installs.
func lookShell(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to check its completion script (hack/ci-deps.sh installs it): %v", name, err)
	}
	return path
}

// TestCompletionScriptsParse checks that bash and zsh accept the scripts: bash -n and
// zsh -n parse them, and zsh defines the completion function when it loads the script
// after compinit.
func TestCompletionScriptsParse(t *testing.T) {
	for _, tc := range []struct {
		shell string
		args  func(script string) []string
	}{
		{"bash", func(s string) []string { return []string{"-n", s} }},
		{"zsh", func(s string) []string { return []string{"-n", s} }},
		{"zsh", func(s string) []string {
			return []string{"-f", "-c", "autoload -U compinit && compinit -u -D && source " + s + " && whence -w _switchyard"}
		}},
	} {
		script := completionScript(t, tc.shell)
		args := tc.args(script)
		t.Run(tc.shell+" "+args[0], func(t *testing.T) {
			out, err := exec.Command(lookShell(t, tc.shell), args...).CombinedOutput()
			if err != nil || (tc.shell == "bash" && len(out) > 0) {
				t.Fatalf("%s %q: %v\n%s", tc.shell, args, err, out)
			}
			if args[0] == "-f" && !strings.Contains(string(out), "_switchyard: function") {
				t.Errorf("zsh did not define _switchyard: %s", out)
			}
		})
	}
}

// bashCompletionLib is the bash-completion package's library, whose
// _get_comp_words_by_ref cobra's bash script uses.
const bashCompletionLib = "/usr/share/bash-completion/bash_completion"

// TestBashCompletes loads the bash script into a real bash and calls its completion
// function as bash does on TAB, with a `switchyard` on PATH that is this test binary
// running main.
// mutation-checked: removing the --mode completion from newDryRunCommand fails
// "dry-run --mode " (bash offers file names).
func TestBashCompletes(t *testing.T) {
	bash := lookShell(t, "bash")
	if _, err := os.Stat(bashCompletionLib); err != nil {
		t.Fatalf("the bash-completion package is needed (hack/ci-deps.sh installs it): %v", err)
	}
	bin := t.TempDir()
	if err := os.Symlink(switchyard(t), filepath.Join(bin, "switchyard")); err != nil {
		t.Fatal(err)
	}
	script := completionScript(t, "bash")
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"switchyard dry-run --mo", []string{"--mode"}},
		{"switchyard dry-run --mode ", []string{"iptables", "ipvs", "nftables"}},
		{"switchyard dry-run --mode i", []string{"iptables", "ipvs"}},
		{"switchyard dry", []string{"dry-run"}},
		{"switchyard run --proxy-mode ip", []string{"iptables", "ipvs"}},
		{"switchyard completion z", []string{"zsh"}},
		{"switchyard run --ipvs-scheduler w", []string{"wrr", "wlc"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			// COMP_WORDS as bash splits the line, with an empty last word after a space.
			words := strings.Fields(tc.line)
			if strings.HasSuffix(tc.line, " ") {
				words = append(words, "")
			}
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = "'" + w + "'"
			}
			program := strings.Join([]string{
				"source " + bashCompletionLib,
				"source " + script,
				"COMP_WORDS=(" + strings.Join(quoted, " ") + ")",
				"COMP_CWORD=" + strconv.Itoa(len(words)-1),
				"COMP_LINE='" + tc.line + "'",
				"COMP_POINT=${#COMP_LINE}",
				"__start_switchyard 2>/dev/null", // compopt complains outside a real TAB
				`printf '%s\n' "${COMPREPLY[@]}"`,
			}, "\n")
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c", program)
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			got := strings.Fields(string(out))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("COMPREPLY (-want +got):\n%s", diff)
			}
		})
	}
}
