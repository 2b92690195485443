// Package restore checks that what `switchyard dry-run` prints is accepted by the real
// iptables-restore, on both the nft and the legacy backend, for IPv4 and IPv6, by
// loading it into network namespaces that the test creates and deletes.
package restore

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// requireRoot skips the test when it cannot create network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: loading rules into network namespaces needs root (run `make e2e` as root)")
	}
	for _, prog := range []string{"ip", "iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore", "ip6tables-legacy-restore"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is missing: install iptables and iproute2 (hack/ci-deps.sh)", prog)
		}
	}
}

// netns creates a network namespace for the test and deletes it at the end, even if
// the test fails.
func netns(t *testing.T, suffix string) string {
	t.Helper()
	name := fmt.Sprintf("sy-rst-%d-%s", os.Getpid(), suffix)
	_ = exec.Command("ip", "netns", "del", name).Run() // left over from a killed run
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// inNetns runs a program inside a namespace with stdin, returning its output.
func inNetns(t *testing.T, ns string, stdin []byte, argv ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// buildSwitchyard builds the binary once per test run.
func buildSwitchyard(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchyard")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// dryRun runs the binary over the bundled examples for one family.
func dryRun(t *testing.T, bin, family string) []byte {
	t.Helper()
	cmd := exec.Command(bin, "dry-run", "-f", "../../manifests/examples/", "--cluster-cidr", "10.244.0.0/16,fd00:244::/56", "--ip-family", family)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dry-run: %v\n%s", err, stderr.String())
	}
	return out
}

// ensureHooks adds the hook jumps dry-run prints as comments the way the daemon's
// EnsureHooks does: the target chain is created first when the payload does not
// declare it (kubelet's KUBE-FIREWALL, which kube-proxy ensures too), then the jump is
// inserted.
func ensureHooks(t *testing.T, ns, iptables string, payload []byte) {
	t.Helper()
	for _, m := range hookLine.FindAllStringSubmatch(string(payload), -1) {
		args := shellSplit(t, m[3])
		target := args[len(args)-1]
		if !regexp.MustCompile(`(?m)^:` + regexp.QuoteMeta(target) + ` `).Match(payload) {
			create := exec.Command("ip", "netns", "exec", ns, iptables, "-t", m[1], "-N", target)
			if out, err := create.CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
				t.Fatalf("%v: %v\n%s", create.Args, err, out)
			}
		}
		inNetns(t, ns, nil, append([]string{iptables, "-t", m[1], "-I", m[2]}, args...)...)
	}
}

// hookLine matches the hook jumps that dry-run prints as comments.
var hookLine = regexp.MustCompile(`(?m)^#   -t (\S+) -I (\S+) (.*)$`)

// chainDecl matches a chain declaration in a payload.
var chainDecl = regexp.MustCompile(`(?m)^:(KUBE-\S+) - `)

func TestDryRunOutputLoadsIntoTheKernel(t *testing.T) {
	requireRoot(t)
	bin := buildSwitchyard(t)
	for _, family := range []string{"ipv4", "ipv6"} {
		payload := dryRun(t, bin, family)
		for _, backend := range []string{"nft", "legacy"} {
			t.Run(family+"/"+backend, func(t *testing.T) {
				prefix := "iptables-"
				if family == "ipv6" {
					prefix = "ip6tables-"
				}
				ns := netns(t, family[2:]+backend)
				restore := prefix + backend + "-restore"

				// --test parses and checks the whole payload in the kernel's terms
				// without committing it.
				inNetns(t, ns, payload, restore, "--test", "--noflush")

				// Then load it for real, twice: a second full sync on top of the
				// first must be accepted too (chains are flushed and refilled).
				inNetns(t, ns, payload, restore, "-w", "5", "--noflush")
				inNetns(t, ns, payload, restore, "-w", "5", "--noflush")

				// The hook jumps the daemon ensures, exactly as dry-run prints them.
				ensureHooks(t, ns, prefix[:len(prefix)-1]+"-"+backend, payload)

				saved := inNetns(t, ns, nil, prefix+backend+"-save")
				for _, m := range chainDecl.FindAllStringSubmatch(string(payload), -1) {
					if !strings.Contains(saved, ":"+m[1]+" ") {
						t.Errorf("chain %s is not in the kernel after the restore", m[1])
					}
				}
				for _, want := range []string{"-j KUBE-SERVICES", "-j KUBE-POSTROUTING", "--random-fully"} {
					if !strings.Contains(saved, want) {
						t.Errorf("kernel rules lack %q", want)
					}
				}
				// The rules must land in the backend asked for, and only there.
				other := map[string]string{"nft": "legacy", "legacy": "nft"}[backend]
				if s := inNetns(t, ns, nil, prefix+other+"-save"); strings.Contains(s, "KUBE-SERVICES") {
					t.Errorf("rules leaked into the %s backend", other)
				}
			})
		}
	}
}

// shellSplit splits a command line quoted by dry-run (single quotes only).
func shellSplit(t *testing.T, s string) []string {
	t.Helper()
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			inQuote, have = !inQuote, true
		case r == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if inQuote {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}
