package restore

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCleanupRemovesOnlyWhatSwitchyardOwns loads the examples' rules and a foreign
// chain into a namespace, runs `switchyard cleanup` there, and checks that exactly the
// foreign rules are left; a second run finds nothing and succeeds.
func TestCleanupRemovesOnlyWhatSwitchyardOwns(t *testing.T) {
	requireRoot(t)
	bin := buildSwitchyard(t)
	payload := dryRun(t, bin, "ipv4")
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			ns := netns(t, "cl"+backend)
			ipt := "iptables-" + backend
			inNetns(t, ns, payload, ipt+"-restore", "-w", "5", "--noflush")
			ensureHooks(t, ns, ipt, payload)
			foreign := "*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -s 10.9.9.9/32 -j DROP\n-A FORWARD -j DOCKER-USER\nCOMMIT\n"
			inNetns(t, ns, []byte(foreign), ipt+"-restore", "--noflush")

			// --dry-run lists and changes nothing.
			listed := inNetns(t, ns, nil, bin, "cleanup", "--dry-run", "--iptables-backend", backend)
			if !strings.Contains(listed, "chain nat/KUBE-SERVICES") || !strings.Contains(listed, "would remove") {
				t.Errorf("dry run does not list the chains:\n%s", listed)
			}
			if saved := inNetns(t, ns, nil, ipt+"-save"); !strings.Contains(saved, "KUBE-SVC-") {
				t.Fatalf("--dry-run removed rules")
			}

			out := inNetns(t, ns, nil, bin, "cleanup", "--iptables-backend", backend)
			saved := inNetns(t, ns, nil, ipt+"-save")
			// kubelet's KUBE-FIREWALL and its jumps stay, as kube-proxy's cleanup leaves
			// them: kubelet owns them.
			if strings.Contains(withoutKubeletFirewall(saved), "KUBE-") {
				t.Errorf("cleanup left KUBE- rules:\n%s\ncleanup said:\n%s", saved, out)
			}
			for _, want := range []string{"-A DOCKER-USER -s 10.9.9.9/32 -j DROP", "-A FORWARD -j DOCKER-USER"} {
				if !strings.Contains(saved, want) {
					t.Errorf("cleanup removed the foreign rule %q", want)
				}
			}

			again := exec.Command("ip", "netns", "exec", ns, bin, "cleanup", "--iptables-backend", backend)
			if msg, err := again.CombinedOutput(); err != nil || !strings.Contains(string(msg), "nothing to remove") {
				t.Errorf("second cleanup: %v\n%s", err, msg)
			}
		})
	}
}

// withoutKubeletFirewall drops the lines of an iptables-save that declare, fill or jump
// to kubelet's KUBE-FIREWALL chain.
func withoutKubeletFirewall(saved string) string {
	var kept []string
	for _, line := range strings.Split(saved, "\n") {
		if !strings.Contains(line, "KUBE-FIREWALL") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}
