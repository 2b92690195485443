package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDryRunNFTablesLocalhostGate checks that dry-run --mode nftables renders kube-proxy's
// localhost node-port rejects with --feature-gates KubeProxyNFTablesLocalhostNodePorts=true
// (all protocols; udp and sctp only when --nodeport-addresses names loopback), and
// only deletes them without it. The examples have a TCP node port 30443.
//
// mutation-checked: not setting Config.LocalhostNodePortRejects in dryRunNFTables
// fails "gate on".
func TestDryRunNFTablesLocalhostGate(t *testing.T) {
	base := []string{"dry-run", "--mode", "nftables", "-f", "../../manifests/examples/"}
	tests := []struct {
		name          string
		args          []string
		want, notWant []string
		code          int
	}{
		{name: "gate off", want: []string{"delete map ip kube-proxy localhost-nodeport-reject-ports"},
			notWant: []string{"add element ip kube-proxy localhost-nodeport-reject-ports"}},
		{name: "gate on", args: []string{"--feature-gates", "KubeProxyNFTablesLocalhostNodePorts=true"},
			want: []string{"add element ip kube-proxy localhost-nodeport-reject-ports { tcp . 30443 : goto localhost-nodeport-reject-tcp }",
				"add rule ip6 kube-proxy nodeport-endpoints-check ip6 daddr ::1 meta l4proto . th dport vmap @localhost-nodeport-reject-ports"}},
		{name: "gate on, loopback named", args: []string{"--feature-gates", "KubeProxyNFTablesLocalhostNodePorts=true", "--nodeport-addresses", "primary,localhost"},
			want:    []string{`add rule ip kube-proxy localhost-nodeport-reject-udp counter name "localhost-nodeport-rejected-udp" reject`},
			notWant: []string{"tcp . 30443 : goto localhost-nodeport-reject-tcp"}},
		{name: "unknown gate", args: []string{"--feature-gates", "NoSuchGate=true"}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append(append([]string(nil), base...), tt.args...), &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d, stderr:\n%s", code, tt.code, stderr.String())
			}
			out := stdout.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q", w)
				}
			}
		})
	}
}
