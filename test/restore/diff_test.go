package restore

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// diffVariants are dry-run settings whose rules differ in shape: the defaults, the
// masquerade and localhost options (MARK values, the KUBE-FIREWALL localnet rule,
// no INVALID drop), and interface-based local detection with listed node-port
// addresses.
var diffVariants = map[string][]string{
	"defaults": nil,
	"masquerade": {"--masquerade-all", "--iptables-masquerade-bit", "3", "--iptables-localhost-nodeports",
		"--conntrack-tcp-be-liberal"},
	"interfaces": {"--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth",
		"--nodeport-addresses", "10.0.0.0/8,fd00::/8,127.0.0.1/32", "--node-ip", "10.0.0.5,fd00::5"},
}

// TestDryRunDiffAgainstTheKernel loads what dry-run renders into a namespace, as the
// daemon's full sync would leave it (payload, hooks, canaries), and runs
// `dry-run --diff` there with the same settings: the real iptables-save's text must
// compare equal to the rendered rules (exit 0, no output) for every rule of every
// variant, on both backends and families. Then a rule deleted from the kernel must
// be reported with exit 1. mutation-checked: dropping the /32 (/128) that
// CanonicalRule adds to addresses, or keeping --or-mark, makes every subtest exit 1.
func TestDryRunDiffAgainstTheKernel(t *testing.T) {
	requireRoot(t)
	bin := buildSwitchyard(t)
	base := []string{"-f", "../../manifests/examples/", "--cluster-cidr", "10.244.0.0/16,fd00:244::/56"}
	for name, variant := range diffVariants {
		for _, family := range []string{"ipv4", "ipv6"} {
			args := append(append(append([]string{"dry-run"}, base...), "--ip-family", family), variant...)
			out, err := exec.Command(bin, args...).Output()
			if err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			payload := out
			for _, backend := range []string{"nft", "legacy"} {
				t.Run(name+"/"+family+"/"+backend, func(t *testing.T) {
					ipt := "iptables-" + backend
					if family == "ipv6" {
						ipt = "ip6tables-" + backend
					}
					ns := netns(t, "d"+family[2:]+backend[:1]+name[:1])
					inNetns(t, ns, payload, ipt+"-restore", "-w", "5", "--noflush")
					ensureHooks(t, ns, ipt, payload)
					for _, table := range []string{"mangle", "nat", "filter"} {
						inNetns(t, ns, nil, ipt, "-w", "5", "-t", table, "-N", "KUBE-PROXY-CANARY")
					}
					// The payload was rendered without nfacct counters; say so, since
					// the namespace's kernel may have them.
					diffArgs := append([]string{bin, "dry-run", "--diff", "--iptables-backend", backend, "--nfacct=false"}, args[1:]...)
					if code, output := runDiff(t, ns, diffArgs); code != 0 || output != "" {
						t.Fatalf("in sync: exit %d, want 0 and no output:\n%s", code, output)
					}

					saved := inNetns(t, ns, nil, ipt+"-save", "-t", "nat")
					chain := ""
					for _, line := range strings.Split(saved, "\n") {
						if strings.HasPrefix(line, "-A KUBE-SVC-") {
							chain = strings.Fields(line)[1]
							break
						}
					}
					inNetns(t, ns, nil, ipt, "-w", "5", "-t", "nat", "-D", chain, "1")
					code, output := runDiff(t, ns, diffArgs)
					if code != 1 || !strings.Contains(output, "\n+-A "+chain+" ") {
						t.Errorf("after deleting %s's first rule: exit %d, want 1 and the rule back:\n%s", chain, code, output)
					}
				})
			}
		}
	}
}

// runDiff runs dry-run --diff in a namespace and returns its exit code and output.
func runDiff(t *testing.T, ns string, argv []string) (int, string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, output.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), output.String()
	}
	t.Fatalf("%v: %v", argv, err)
	return 0, ""
}
