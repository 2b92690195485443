package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/nftables"
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

// fakeNFTKernel is a node whose kube-proxy table lists as tables[family].
type fakeNFTKernel struct {
	fakeKernel
	tables map[v1.IPFamily][]byte
}

func (k fakeNFTKernel) ListNFTable(_ context.Context, family v1.IPFamily) ([]byte, error) {
	if t, ok := k.tables[family]; ok {
		return t, nil
	}
	return nil, errors.New("no such table")
}

// renderedNFTable is the examples' table for family as node-a's daemon would hold
// it: dry-run's render applied to a knftables.Fake, dumped.
func renderedNFTable(t *testing.T, family v1.IPFamily) []byte {
	t.Helper()
	opts, _ := parseExplainFlags(t, append(explainExamplesArgs[1:], "--mode", "nftables", "--nodeport-addresses", "primary"))
	rin, code := loadRenderInput(t.Context(), opts, os.Stderr)
	if rin == nil {
		t.Fatalf("loadRenderInput: exit %d", code)
	}
	for _, ic := range rin.configs {
		if ic.Family != family {
			continue
		}
		cfg := &nftables.Config{FamilyConfig: ic.FamilyConfig}
		fake := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
		if err := nftables.Apply(t.Context(), fake, nftables.Render(fake.NewTransaction, rin.snap, cfg, nftables.EmptyKernel())); err != nil {
			t.Fatal(err)
		}
		return []byte(fake.Dump())
	}
	t.Fatalf("no %s config", family)
	return nil
}

// TestExplainNFTablesLive explains from a node's table as `nft list table` gives it:
// the examples' rendered table gives, for every packet, the same JSON answer as
// offline (-f then only names the Services and pods); and kube-proxy v1.37.2's own
// table (its real `nft list table` output, pkg/nftables/nftmodel/testdata) is
// explained without objects. mutation-checked: leaving the node's addresses out of
// liveNFTablesInput fails "kube-proxy's table" (the packet to a node port without a
// local endpoint is then forwarded, not dropped in filter-input); sending --live to offlineNFTablesInput fails
// "kube-proxy's table".
func TestExplainNFTablesLive(t *testing.T) {
	kernel := fakeNFTKernel{
		fakeKernel: fakeKernel{addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.10.11"), netip.MustParseAddr("fd00:10::11")}},
		tables:     map[v1.IPFamily][]byte{v1.IPv4Protocol: renderedNFTable(t, v1.IPv4Protocol), v1.IPv6Protocol: renderedNFTable(t, v1.IPv6Protocol)},
	}
	for name, args := range map[string][]string{
		"cluster IP":    {"--src", "10.244.1.99", "--dst", "10.96.10.10:80"},
		"hairpin":       {"--src", "10.244.1.5", "--dst", "10.96.10.10:80"},
		"node port":     {"--src", "192.0.2.99", "--dst", "192.168.10.11:30443", "--from", "outside"},
		"no endpoints":  {"--src", "10.244.1.99", "--dst", "10.96.50.50:80"},
		"unknown port":  {"--src", "10.244.1.99", "--dst", "10.96.10.10:81"},
		"LB denied":     {"--src", "192.0.2.99", "--dst", "198.51.100.20:443", "--from", "outside"},
		"external IP":   {"--src", "192.0.2.99", "--dst", "192.0.2.50:9090", "--from", "outside"},
		"IPv6":          {"--src", "fd00:244::99", "--dst", "[fd00:96::10]:80"},
		"from the node": {"--src", "192.168.10.11", "--dst", "10.96.20.20:443", "--from", "node"},
	} {
		t.Run(name, func(t *testing.T) {
			answer := func(live bool) (int, string) {
				opts, eo := parseExplainFlags(t, append(append(explainExamplesArgs[1:], "--mode", "nftables", "-o", "json", "--node", "node-a"), args...))
				eo.live = live
				eo.kernel = kernel
				var stdout, stderr strings.Builder
				code := explainPacket(t.Context(), opts, eo, &stdout, &stderr)
				if code == 2 || (code == 1 && stdout.Len() == 0) {
					t.Fatalf("live=%v: exit %d, stderr:\n%s", live, code, stderr.String())
				}
				return code, stdout.String()
			}
			wantCode, want := answer(false)
			gotCode, got := answer(true)
			if gotCode != wantCode {
				t.Errorf("live exit %d, offline %d", gotCode, wantCode)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("live differs from offline (-offline +live):\n%s", diff)
			}
		})
	}

	t.Run("kube-proxy's table", func(t *testing.T) {
		text, err := os.ReadFile("../../pkg/nftables/nftmodel/testdata/kube-proxy-ip.nft")
		if err != nil {
			t.Fatal(err)
		}
		kp := fakeNFTKernel{fakeKernel: fakeKernel{addrs: []netip.Addr{netip.MustParseAddr("10.250.0.11"), netip.MustParseAddr("10.244.1.1")}},
			tables: map[v1.IPFamily][]byte{v1.IPv4Protocol: text}}
		for _, tc := range []struct {
			args     []string
			wantCode int
			want     []string
		}{
			{args: []string{"--src", "10.244.1.99", "--dst", "10.96.1.1:80"}, want: []string{"Service:    nft/web:http, reached through its cluster IP",
				"10.244.1.2:80            33.3%", "10.244.2.3:80            33.3%", "Verdict:    delivered"}},
			{args: []string{"--src", "10.251.0.100", "--dst", "10.250.0.11:30082", "--from", "outside"}, wantCode: 1,
				want: []string{"ip kube-proxy/nodeport-endpoints-check", "Verdict:    dropped: nft/local-remote:http has no endpoints on this node"}},
		} {
			opts, eo := parseExplainFlags(t, append([]string{"--mode", "nftables"}, tc.args...))
			eo.kernel = kp
			var stdout, stderr strings.Builder
			if code := explainPacket(t.Context(), opts, eo, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("%v: exit %d, want %d; stderr:\n%s", tc.args, code, tc.wantCode, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stdout.String())
				}
			}
		}
	})
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
