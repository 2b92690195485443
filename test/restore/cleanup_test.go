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
			for _, m := range hookLine.FindAllStringSubmatch(string(payload), -1) {
				inNetns(t, ns, nil, append([]string{ipt, "-t", m[1], "-I", m[2]}, shellSplit(t, m[3])...)...)
			}
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
			if strings.Contains(saved, "KUBE-") {
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
