package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/explain"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstesting "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// TestExplainIPVSOffline runs `explain --mode ipvs` on the examples and checks exit
// codes and the lines a reader looks for.
// mutation-checked: explainPacket sending --mode ipvs to explainIPTables fails every
// row (no scheduler, probabilities instead of weights); ignoring --ipvs-scheduler in
// offlineIPVSInput (ipvsConfigFrom(ic, "", …)) fails "scheduler flag".
func TestExplainIPVSOffline(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{name: "pod to cluster IP", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:80"},
			want: []string{"Service:    shop/web:http, reached through its cluster IP", `chosen by the IPVS "rr" scheduler`,
				"10.244.1.5:8080         weight 1", "10.244.2.7:8080         weight 1", "Verdict:    delivered"}},
		{name: "scheduler flag", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:80", "--ipvs-scheduler", "lc"},
			want: []string{`chosen by the IPVS "lc" scheduler`}},
		{name: "node port from outside", args: []string{"--src", "192.0.2.99", "--dst", "192.168.10.11:30443", "--from", "outside"},
			want: []string{"reached through its node port", "[masqueraded]", "Masquerade: yes: node-port traffic", "Affinity:   ClientIP", "600 s"}},
		{name: "no endpoints", args: []string{"--src", "10.244.1.99", "--dst", "10.96.50.50:80"}, wantCode: 1,
			want: []string{"Service:    shop/legacy:http", "Verdict:    rejected", "no real servers"}},
		{name: "unknown port on a cluster IP", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:81"}, wantCode: 1,
			want: []string{"Verdict:    rejected", "KUBE-IPVS-FILTER"}},
		{name: "IPv6 cluster IP", args: []string{"--src", "fd00:244:1::99", "--dst", "[fd00:96::10]:80"},
			want: []string{"IPVS TCP/[fd00:96::10]:80", "Verdict:    delivered"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runExplain(t, append([]string{"--mode", "ipvs"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nstdout:\n%s", code, tc.wantCode, stderr, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
	if code, _, stderr := runExplain(t, "--mode", "ipvs", "--ipvs-scheduler", "fastest", "--src", "10.244.1.99", "--dst", "10.96.10.10:80"); code != 2 || !strings.Contains(stderr, `--ipvs-scheduler "fastest"`) {
		t.Errorf("bad scheduler: exit %d, stderr %q; want 2 naming the flag", code, stderr)
	}
}

// TestExplainIPVSLive programs fake kernels with the real IPVS Proxier for the
// examples, then runs `explain --mode ipvs --live` against them: every packet gets the
// same JSON answer as offline. -f only names the Services and pods there.
// mutation-checked: leaving the kube-ipvs0 addresses out of ReadIPVSInput's local
// addresses fails "unknown port".
func TestExplainIPVSLive(t *testing.T) {
	ctx := context.Background()
	opts, _ := parseExplainFlags(t, append(explainExamplesArgs[1:], "--mode", "ipvs"))
	rin, code := loadRenderInput(ctx, opts, &strings.Builder{})
	if rin == nil {
		t.Fatalf("loadRenderInput: exit %d", code)
	}
	cfg := ipvsConfigFrom(rin.configs[0], ipvs.DefaultScheduler, false)
	if cfg.Family != v1.IPv4Protocol {
		t.Fatalf("first config is %s", cfg.Family)
	}
	k := explain.IPVSKernel{IPVS: ipvstesting.NewIPVS(), Links: ipvstesting.NewLinks(cfg.NodeIPs...), IPSets: ipvstesting.NewIPSets()}
	ipt := xtablestest.NewFake(ruleset.IPv4)
	p, err := ipvs.NewProxier(cfg, ipvs.Kernel{IPVS: k.IPVS, Links: k.Links, IPSets: k.IPSets, IPTables: ipt, Sysctl: ipvstesting.NewSysctl()}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(ctx, rin.snap); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	dump, err := ipt.SaveAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kernel := fakeKernel{dump: dump, addrs: append([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, cfg.NodeIPs...), ipvs: &k}

	for name, args := range map[string][]string{
		"cluster IP":   {"--src", "10.244.1.99", "--dst", "10.96.10.10:80"},
		"node port":    {"--src", "192.0.2.99", "--dst", "192.168.10.11:30443", "--from", "outside"},
		"no endpoints": {"--src", "10.244.1.99", "--dst", "10.96.50.50:80"},
		"unknown port": {"--src", "10.244.1.99", "--dst", "10.96.10.10:81"},
		"external IP":  {"--src", "192.0.2.99", "--dst", "192.0.2.50:9090", "--from", "outside"},
		"from node":    {"--src", "192.168.10.11", "--dst", "10.96.20.20:443", "--from", "node"},
	} {
		t.Run(name, func(t *testing.T) {
			answer := func(live bool) (int, string) {
				opts, eo := parseExplainFlags(t, append(append(explainExamplesArgs[1:], "--mode", "ipvs", "-o", "json", "--node", "node-a"), args...))
				eo.live = live
				eo.kernel = kernel
				var stdout, stderr strings.Builder
				code := explainPacket(ctx, opts, eo, &stdout, &stderr)
				if code == 2 || (code == 1 && stdout.Len() == 0) {
					t.Fatalf("live=%v: exit %d, stderr:\n%s", live, code, stderr.String())
				}
				var e explain.Explanation
				if err := json.Unmarshal([]byte(stdout.String()), &e); err != nil {
					t.Fatalf("live=%v: output is not JSON: %v\n%s", live, err, stdout.String())
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
}
