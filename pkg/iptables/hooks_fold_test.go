package iptables

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// countingFake is the strict fake, counting the single-rule and single-chain
// operations (each one iptables process on a real host). It scans tables, so the
// Proxier folds the hooks into its payload.
type countingFake struct {
	*xtablestest.Fake
	processes int
}

func (f *countingFake) EnsureChain(ctx context.Context, table xtables.Table, chain xtables.Chain) error {
	f.processes++
	return f.Fake.EnsureChain(ctx, table, chain)
}

func (f *countingFake) EnsureRule(ctx context.Context, table xtables.Table, chain xtables.Chain, args ...string) error {
	f.processes++
	return f.Fake.EnsureRule(ctx, table, chain, args...)
}

// oneByOne hides the fake's TableScanner: the Proxier then ensures hooks one by one,
// as it did before they were folded, which is the reference here.
type oneByOne struct{ xtables.Interface }

// TestFoldedHooksMatchEnsureHooks checks that a full sync whose payload carries the
// hooks leaves the tables exactly as ensuring them one by one (kube-proxy's way:
// iptables -C, then -I CHAIN 1) does, from several starting points, and again at a
// second full sync, without one single-rule operation.
//
// mutation-checked: writing the inserts as "-A CHAIN" fails "kube-proxy's tables"
// and "foreign rule first" (order); dropping the saved-rule check in planHooks
// (inserting every hook) fails every case after the first sync (duplicates);
// declaring KUBE-FIREWALL even when it exists fails "kubelet's KUBE-FIREWALL" (its
// rule flushed); leaving out the canary declarations fails "empty kernel".
func TestFoldedHooksMatchEnsureHooks(t *testing.T) {
	kubeletFirewall := "*filter\n:KUBE-FIREWALL - [0:0]\n-A KUBE-FIREWALL -s 10.9.9.9/32 -j DROP\n-A OUTPUT -j KUBE-FIREWALL\nCOMMIT\n"
	foreignFirst := "*filter\n:FOREIGN - [0:0]\n-A INPUT -j FOREIGN\n-A FORWARD -j FOREIGN\nCOMMIT\n*nat\n:FOREIGN - [0:0]\n-A PREROUTING -j FOREIGN\nCOMMIT\n"
	cases := []struct {
		name string
		// setup prepares the kernel; it gets the fake and a config.
		setup     func(t *testing.T, ipt xtables.Interface, cfg *Config)
		localhost bool
	}{
		{name: "empty kernel", setup: func(*testing.T, xtables.Interface, *Config) {}},
		{name: "kube-proxy's tables", setup: func(t *testing.T, ipt xtables.Interface, cfg *Config) {
			if err := xtables.EnsureHooks(context.Background(), ipt, Hooks(cfg)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "half of the hooks", setup: func(t *testing.T, ipt xtables.Interface, cfg *Config) {
			var half []xtables.Hook
			for i, h := range Hooks(cfg) {
				if i%2 == 0 {
					half = append(half, h)
				}
			}
			if err := xtables.EnsureHooks(context.Background(), ipt, half); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "kubelet's KUBE-FIREWALL", setup: func(t *testing.T, ipt xtables.Interface, _ *Config) {
			if err := ipt.Restore(context.Background(), []byte(kubeletFirewall)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "kubelet's KUBE-FIREWALL, localhost node ports", localhost: true, setup: func(t *testing.T, ipt xtables.Interface, _ *Config) {
			if err := ipt.Restore(context.Background(), []byte(kubeletFirewall)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "foreign rule first", setup: func(t *testing.T, ipt xtables.Interface, _ *Config) {
			if err := ipt.Restore(context.Background(), []byte(foreignFirst)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	tracker := endpoints.NewTracker(testNode)
	feed(t, tracker, makeService("ns", "web", "172.30.0.10"), makeSlice("ns", "web", "web-1", 8080, ep{IP: "10.180.0.1", Node: testNode}))
	snap := tracker.Snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig()
			cfg.LocalhostNodePorts = tc.localhost
			folded := &countingFake{Fake: xtablestest.NewFake(ruleset.IPv4)}
			reference := xtablestest.NewFake(ruleset.IPv4)
			tc.setup(t, folded.Fake, cfg)
			tc.setup(t, reference, cfg)
			pf, err := NewProxier(cfg, folded, time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			pr, err := NewProxier(cfg, oneByOne{reference}, time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			for sync := 1; sync <= 2; sync++ {
				pf.RequestFullSync("test")
				pr.RequestFullSync("test")
				if _, err := pf.SyncDetailed(ctx, snap); err != nil {
					t.Fatalf("sync %d, hooks folded: %v", sync, err)
				}
				if _, err := pr.SyncDetailed(ctx, snap); err != nil {
					t.Fatalf("sync %d, hooks one by one: %v", sync, err)
				}
				want, _ := reference.SaveAll(ctx)
				got, _ := folded.SaveAll(ctx)
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Fatalf("sync %d: tables differ (-one by one +folded):\n%s", sync, diff)
				}
			}
			if folded.processes != 0 {
				t.Errorf("%d single-rule or single-chain operations, want none", folded.processes)
			}
			last := folded.Restores()[len(folded.Restores())-1]
			if strings.Contains(string(last), "-I ") {
				t.Errorf("second full sync inserts hooks again:\n%s", last)
			}
		})
	}
}

// TestSplitSaveArgs checks the parsing of iptables-save rules that planHooks compares
// with the hooks' arguments.
func TestSplitSaveArgs(t *testing.T) {
	for _, tc := range []struct {
		rule string
		want []string
	}{
		{`-j KUBE-FIREWALL`, []string{"-j", "KUBE-FIREWALL"}},
		{`-m comment --comment "kubernetes service portals" -j KUBE-SERVICES`, []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"}},
		{`-m comment --comment "a \"quoted\" word"  -j X`, []string{"-m", "comment", "--comment", `a "quoted" word`, "-j", "X"}},
		{`-m comment --comment "" -j X`, []string{"-m", "comment", "--comment", "", "-j", "X"}},
	} {
		if diff := cmp.Diff(tc.want, splitSaveArgs(tc.rule)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.rule, diff)
		}
		if got := splitSaveArgs(joinRestoreArgs(tc.want)); !cmp.Equal(got, tc.want) {
			t.Errorf("joinRestoreArgs(%q) does not split back: %q", tc.want, got)
		}
	}
}
