package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// completions runs cobra's hidden __complete command, as the shells' scripts do, and
// returns the candidates without their descriptions.
func completions(t *testing.T, args ...string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"__complete"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, stderr.String())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if strings.HasPrefix(line, ":") { // the directive
			continue
		}
		value, _, _ := strings.Cut(line, "\t")
		got = append(got, value)
	}
	return got
}

// TestFlagValueCompletion checks the values offered for the flags that take one of a
// few words, and the completion of flag names. The shells keep the candidates that
// start with what was typed (test/completion's TestBashCompletes checks that).
// mutation-checked: registering dry-run's completion under "mod" instead of "mode"
// fails "dry-run --mode" (cobra then offers nothing).
func TestFlagValueCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"dry-run", "--mo"}, []string{"--mode"}},
		{[]string{"dry-run", "--mode", ""}, []string{"iptables", "ipvs", "nftables"}},
		{[]string{"dry-run", "--mode="}, []string{"iptables", "ipvs", "nftables"}},
		{[]string{"explain", "--mode", ""}, []string{"iptables", "ipvs", "nftables"}},
		{[]string{"dry-run", "--ip-family", ""}, []string{"auto", "ipv4", "ipv6"}},
		{[]string{"dry-run", "--detect-local-mode", ""}, []string{"ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"}},
		{[]string{"dry-run", "--ipvs-scheduler", ""}, []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"}},
		{[]string{"dry-run", "--nodeport-addresses", ""}, []string{"all", "primary", "localhost"}},
		{[]string{"run", "--proxy-mode", ""}, []string{"iptables", "ipvs", "nftables"}},
		{[]string{"run", "--mode", ""}, []string{"iptables", "ipvs", "nftables"}},
		{[]string{"run", "--detect-local-mode", ""}, []string{"ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"}},
		{[]string{"run", "--ipvs-scheduler", ""}, []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"}},
		{[]string{"run", "--iptables-backend", ""}, []string{"auto", "nft", "legacy"}},
		{[]string{"run", "--logging-format", ""}, []string{"text", "json"}},
		{[]string{"run", "--hostname-o"}, []string{"--hostname-override"}},
		{[]string{"cleanup", "--iptables-backend", ""}, []string{"all", "nft", "legacy"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish", "powershell"}},
		{[]string{"dr"}, []string{"dry-run"}},
		{[]string{"help", ""}, []string{"cleanup", "completion", "dry-run", "explain", "run", "version"}},
		{[]string{"explain", "--from", ""}, []string{"pod", "node", "outside"}},
		{[]string{"explain", "--proto", ""}, []string{"tcp", "udp", "sctp"}},
		{[]string{"explain", "-o", ""}, []string{"text", "json"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if diff := cmp.Diff(tc.want, completions(t, tc.args...)); diff != "" {
				t.Errorf("completions (-want +got):\n%s", diff)
			}
		})
	}
}
