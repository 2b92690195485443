package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nftExplainCases are the packets `explain --mode nftables` is pinned for, on the
// examples (IP plan in explain_test.go and pkg/explain/iptables_test.go): the
// scenarios the iptables explain tests cover. node-c is a node without Node object
// (address 192.168.10.99), so it has no local endpoint of shop/storefront.
var nftExplainCases = []struct {
	name     string
	args     []string
	wantCode int
	want     []string
}{
	{name: "cluster IP", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:80"},
		want: []string{"Service:    shop/web:http, reached through its cluster IP", "Path (nftables rules):",
			"10.244.1.5:8080          50.0%  on node node-a (this node)", "10.244.2.7:8080          50.0%  on node node-b",
			"Masquerade: no", "Verdict:    delivered"}},
	{name: "hairpin", args: []string{"--src", "10.244.1.5", "--dst", "10.96.10.10:80"},
		want: []string{"10.244.1.5:8080          50.0%  on node node-a (this node)  [masqueraded]",
			"Masquerade: yes: only on the way to 10.244.1.5:8080: the source 10.244.1.5 is the endpoint itself (hairpin)"}},
	{name: "no endpoints", args: []string{"--src", "10.244.1.99", "--dst", "10.96.50.50:80"}, wantCode: 1,
		want: []string{"Service:    shop/legacy:http, reached through its cluster IP", "ip kube-proxy/service-endpoints-check",
			"Verdict:    rejected: shop/legacy:http has no endpoints"}},
	{name: "unknown port on a cluster IP", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:81"}, wantCode: 1,
		want: []string{"Service:    none", "Verdict:    rejected: 10.96.10.10 is a cluster IP, but no Service serves tcp port 81 on it"}},
	{name: "node port from outside", args: []string{"--src", "192.0.2.99", "--dst", "192.168.10.11:30443", "--from", "outside"},
		want: []string{"reached through its node port", "Masquerade: yes: externalTrafficPolicy is Cluster", "Affinity:   ClientIP", "600 s"}},
	{name: "LB from an allowed source", args: []string{"--src", "203.0.113.5", "--dst", "198.51.100.20:443", "--from", "outside"},
		want: []string{"reached through its load-balancer IP", "is within them: allowed", "externalTrafficPolicy is Local",
			"10.244.1.30:8443        100.0%", "Masquerade: no", "Verdict:    delivered"}},
	{name: "LB from another source", args: []string{"--src", "192.0.2.99", "--dst", "198.51.100.20:443", "--from", "outside"}, wantCode: 1,
		want: []string{"ip kube-proxy/firewall-XUFH7HGN-shop/storefront/tcp/https",
			"Verdict:    dropped: the source 192.0.2.99 is not in shop/storefront:https's loadBalancerSourceRanges"}},
	{name: "eTP Local, no local endpoint", args: []string{"--node", "node-c", "--node-ip", "192.168.10.99", "--src", "192.0.2.99", "--dst", "192.168.10.99:31443", "--from", "outside"},
		wantCode: 1, want: []string{"reached through its node port",
			"Verdict:    dropped: shop/storefront:https has no endpoints on this node and its traffic policy is Local"}},
	{name: "external IP", args: []string{"--src", "192.0.2.99", "--dst", "192.0.2.50:9090", "--from", "outside"},
		want: []string{"reached through its external IP", "10.244.2.40:9090        100.0%  on node node-b  [masqueraded]"}},
	{name: "from the node", args: []string{"--src", "192.168.10.11", "--dst", "10.96.20.20:443", "--from", "node"},
		want: []string{"ip kube-proxy/nat-output", "outside the cluster CIDR 10.244.0.0/16", "Affinity:   ClientIP"}},
	{name: "IPv6 cluster IP", args: []string{"--src", "fd00:244::99", "--dst", "[fd00:96::10]:80"},
		want: []string{"ip6 kube-proxy/services", "[fd00:244:1::5]:8080", "Masquerade: no", "Verdict:    delivered"}},
}

var nftGolden = filepath.Join("testdata", "explain-nftables-examples.golden")

// TestExplainNFTables runs `explain --mode nftables` on the examples: the exit code
// and the lines a reader looks for, then every answer against the golden file
// (rewrite with -update and review the diff).
//
// mutation-checked: explainPacket sending --mode nftables to explainIPTables fails
// most rows ("Path (iptables rules)") and TestExplainNFTablesLive;
// offlineNFTablesInput picking the first config whatever the family fails "IPv6
// cluster IP".
func TestExplainNFTables(t *testing.T) {
	var all strings.Builder
	for _, tc := range nftExplainCases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runExplain(t, append([]string{"--mode", "nftables"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nstdout:\n%s", code, tc.wantCode, stderr, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			fmt.Fprintf(&all, "$ switchyard explain --mode nftables %s\n%s$ echo $?\n%d\n\n", strings.Join(tc.args, " "), stdout, code)
		})
	}
	if *update {
		if err := os.WriteFile(nftGolden, []byte(all.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(nftGolden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), all.String()); diff != "" {
		t.Errorf("explain output differs from %s (-want +got):\n%s", nftGolden, diff)
	}
}

// TestExplainNFTablesLive: nftables mode reads no live table yet; it says so, with
// a usage error, rather than explaining with another mode's rules.
func TestExplainNFTablesLive(t *testing.T) {
	opts, eo := parseExplainFlags(t, []string{"--mode", "nftables", "--src", "10.244.1.99", "--dst", "10.96.10.10:80"})
	var stdout, stderr strings.Builder
	if code := explainPacket(t.Context(), opts, eo, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "reads no live table yet") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("wrote output %q", stdout.String())
	}
}

// TestExplainNFTablesRendersAsDryRun: the table explained is dry-run's, node ports
// restricted to the node's primary address (the nodeport-ips set) as kube-proxy
// defaults to in nftables mode. mutation-checked: dropping the "primary" default in
// offlineNFTablesInput fails it (node ports then match any local address, with no
// nodeport-ips set).
func TestExplainNFTablesRendersAsDryRun(t *testing.T) {
	opts, eo := parseExplainFlags(t, append(explainExamplesArgs[1:], "--mode", "nftables", "--src", "10.244.1.99", "--dst", "10.96.10.10:80"))
	pkt, err := eo.packet()
	if err != nil {
		t.Fatal(err)
	}
	in, code := offlineNFTablesInput(t.Context(), opts, pkt, os.Stderr)
	if in == nil {
		t.Fatalf("exit %d", code)
	}
	table := in.Rules.Table("ip", "kube-proxy")
	if table == nil || table.Sets["nodeport-ips"] == nil {
		t.Fatalf("no nodeport-ips set in the explained table")
	}
	var got []string
	for _, e := range table.Sets["nodeport-ips"].Elements {
		got = append(got, e.Text)
	}
	if diff := cmp.Diff([]string{"192.168.10.11"}, got); diff != "" {
		t.Errorf("nodeport-ips (-want +got):\n%s", diff)
	}
}
