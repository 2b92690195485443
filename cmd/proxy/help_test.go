package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// commandPaths lists every command of switchyard, as the words after "switchyard"; the
// root is the empty path.
func commandPaths(t *testing.T) map[string]*cobra.Command {
	t.Helper()
	paths := map[string]*cobra.Command{}
	var walk func(prefix []string, cmd *cobra.Command)
	walk = func(prefix []string, cmd *cobra.Command) {
		paths[strings.Join(prefix, " ")] = cmd
		for _, sub := range cmd.Commands() {
			if !sub.Hidden {
				walk(append(append([]string(nil), prefix...), sub.Name()), sub)
			}
		}
	}
	root := newRootCommand()
	root.InitDefaultHelpCmd() // else added when it runs
	walk(nil, root)
	for _, want := range []string{"", "run", "dry-run", "cleanup", "version", "completion", "help"} {
		if paths[want] == nil {
			t.Errorf("no command %q", want)
		}
	}
	return paths
}

// flagLine matches a line of the Flags section: pflag's "  -f, --filename ..." or
// "      --mode string ...". Go's flag package printed "  -mode string", which does not
// match.
var flagLine = regexp.MustCompile(`^  (-[a-zA-Z], |    )--[a-z]`)

// TestHelp checks every command's help, asked for with --help, -h and `switchyard help
// CMD`: exit code 0, the help on stdout and nothing on stderr, Short, Long and Example
// present and printed, and every flag spelled --flag.
// Cobra answers --help by printing the help and returning no error; exitCode maps that
// to 0. mutation-checked: mapping a nil error to exitUsage in exitCode fails every row;
// removing daemonArgs' -h/--help exception fails the root's "--help" and "-h" rows.
func TestHelp(t *testing.T) {
	for path, cmd := range commandPaths(t) {
		words := strings.Fields(path)
		for _, form := range [][]string{
			append(append([]string(nil), words...), "--help"),
			append(append([]string(nil), words...), "-h"),
			append([]string{"help"}, words...),
		} {
			t.Run(strings.Join(form, " "), func(t *testing.T) {
				if cmd.Short == "" || cmd.Long == "" || cmd.Example == "" {
					t.Errorf("switchyard %s: Short, Long and Example are all needed", path)
				}
				var stdout, stderr bytes.Buffer
				if code := run(form, &stdout, &stderr); code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
				}
				if stderr.Len() != 0 {
					t.Errorf("help wrote to stderr:\n%s", stderr.String())
				}
				help := stdout.String()
				for _, want := range []string{cmd.Long, "Examples:\n" + cmd.Example, "Usage:\n  " + cmd.UseLine()} {
					if !strings.Contains(help, want) {
						t.Errorf("help lacks %q:\n%s", want, help)
					}
				}
				checkFlagSpelling(t, help, cmd.LocalFlags())
			})
		}
	}
}

// checkFlagSpelling checks that help lists each of flags as --name and that every
// line of its Flags section has pflag's spelling.
func checkFlagSpelling(t *testing.T, help string, flags *pflag.FlagSet) {
	t.Helper()
	flags.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && !strings.Contains(help, "--"+f.Name+" ") {
			t.Errorf("help lacks --%s", f.Name)
		}
	})
	_, section, ok := strings.Cut(help, "\nFlags:\n")
	if !ok {
		t.Fatalf("no Flags section:\n%s", help)
	}
	section, _, _ = strings.Cut(section, "\n\n")
	for _, line := range strings.Split(strings.TrimRight(section, "\n"), "\n") {
		if !flagLine.MatchString(line) {
			t.Errorf("flag line %q is not spelled --flag", line)
		}
	}
}

// TestRootHelp checks what the root's help says beyond the common parts: the commands,
// and kube-proxy's command line; and that `switchyard` alone prints it on stderr with
// exit code 2 (a usage error, as before the move to cobra).
// mutation-checked: letting daemonArgs prefix run to --help fails "--help" (the
// daemon's help, no commands); making the root's RunE return nil fails "no
// arguments".
func TestRootHelp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		toStderr bool
	}{
		{"--help", []string{"--help"}, 0, false},
		{"-h", []string{"-h"}, 0, false},
		{"help", []string{"help"}, 0, false},
		{"no arguments", nil, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("exit %d, want %d", code, tc.wantCode)
			}
			help, other := stdout.String(), stderr.String()
			if tc.toStderr {
				help, other = other, help
			}
			if other != "" {
				t.Errorf("unexpected output on the other stream:\n%s", other)
			}
			for _, want := range []string{
				"Available Commands:", "  dry-run ", "  run ", "  cleanup ", "  completion ", "  version ",
				"switchyard [kube-proxy flags]", "switchyard --config=/var/lib/kube-proxy/config.conf --hostname-override=node1",
				"'switchyard run --help' lists kube-proxy's flags",
			} {
				if !strings.Contains(help, want) {
					t.Errorf("root help lacks %q:\n%s", want, help)
				}
			}
			if strings.Contains(help, "--hostname-override string") {
				t.Errorf("root help lists the daemon's flags, not the commands:\n%s", help)
			}
		})
	}
}

// TestUsageErrors checks that a bad command line names what is wrong on stderr, points
// to --help, prints nothing on stdout and exits 2; the daemon's command line exits 1,
// as kube-proxy.
// mutation-checked: setting the run command's FlagErrorFunc to flagError(exitUsage)
// fails the "run: unknown flag" and "kube-proxy command line" rows (and
// TestInvocations, TestKubeProxyLink); dropping the -mode hint in flagError fails
// "single-dash long flag"; SilenceErrors or SilenceUsage false on the root fails the
// rows where cobra then prints "Error: ..." or the usage.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate" for "switchyard"`, "Run 'switchyard --help' for usage."}},
		{"misspelt command", []string{"dryrun"}, 2, []string{`unknown command "dryrun"`, "Did you mean this?\n\tdry-run"}},
		{"dry-run: unknown flag", []string{"dry-run", "-f", "x.yaml", "--no-such-flag"}, 2, []string{"unknown flag: --no-such-flag", "Run 'switchyard dry-run --help' for usage."}},
		{"dry-run: bad flag value", []string{"dry-run", "--iptables-masquerade-bit", "x"}, 2, []string{`invalid argument "x" for "--iptables-masquerade-bit"`}},
		{"single-dash long flag", []string{"dry-run", "-mode", "ipvs"}, 2, []string{"in -mode (flags are spelled with two dashes: --mode)"}},
		{"cleanup: unknown flag", []string{"cleanup", "--force"}, 2, []string{"unknown flag: --force", "Run 'switchyard cleanup --help' for usage."}},
		{"cleanup: argument", []string{"cleanup", "now"}, 2, []string{`unknown command "now" for "switchyard cleanup"`}},
		{"version: unknown flag", []string{"version", "--short"}, 2, []string{"unknown flag: --short"}},
		{"help: unknown command", []string{"help", "frobnicate"}, 2, []string{`no help for "frobnicate": 'switchyard --help' lists the commands`}},
		{"help: argument", []string{"help", "version", "x"}, 2, []string{`no help for "version x"`}},
		{"completion: no shell", []string{"completion"}, 2, []string{"completion needs one shell: bash, zsh, fish or powershell"}},
		{"completion: unknown shell", []string{"completion", "tcsh"}, 2, []string{`got ["tcsh"]`}},
		{"run: unknown flag", []string{"run", "--no-such-flag"}, 1, []string{"unknown flag: --no-such-flag", "Run 'switchyard run --help' for usage."}},
		{"kube-proxy command line", []string{"--no-such-flag"}, 1, []string{"unknown flag: --no-such-flag"}},
		{"run: argument", []string{"run", "extra"}, 1, []string{`run takes no arguments, got ["extra"]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			installFakes(t)
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("exit %d, want %d", code, tc.wantCode)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout:\n%s", stdout.String())
			}
			if strings.Contains(stderr.String(), "Error: ") || strings.Contains(stderr.String(), "Flags:") {
				t.Errorf("cobra printed the error or the usage itself (SilenceErrors, SilenceUsage):\n%s", stderr.String())
			}
		})
	}
}

// TestKubeProxyLink checks the command line of the image's kube-proxy link: the daemon
// alone, with kube-proxy's flags, its help and exit codes.
// mutation-checked: dropping the kube-proxy branch of execute fails "no arguments"
// (switchyard's help, exit 2), "--help" (the commands, not the flags) and
// "argument run" (runs the daemon).
func TestKubeProxyLink(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStart  bool
		wantStdout []string
	}{
		{"no arguments", nil, 0, true, nil},
		{"flags", []string{"--cluster-cidr=10.0.0.0/8", "--hostname-override=node1"}, 0, true, nil},
		{"--help", []string{"--help"}, 0, false, []string{"Usage:\n  kube-proxy [flags]\n", "--hostname-override string", "--config string", "--proxy-mode string"}},
		{"--version", []string{"--version"}, 0, false, []string{"switchyard dev\n"}},
		{"unknown flag", []string{"--no-such-flag"}, 1, false, nil},
		{"argument run", []string{"run"}, 1, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := installFakes(t)
			var stdout, stderr bytes.Buffer
			if code := execute("/usr/local/bin/kube-proxy", tc.args, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if (fake.started != nil) != tc.wantStart {
				t.Errorf("daemon started: %v, want %v", fake.started != nil, tc.wantStart)
			}
			for _, want := range tc.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			if strings.Contains(stdout.String(), "Available Commands") {
				t.Errorf("kube-proxy's help lists switchyard's commands:\n%s", stdout.String())
			}
		})
	}
}
