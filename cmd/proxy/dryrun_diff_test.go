package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/manifest"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// examplesSnapshot renders the bundled examples' objects for dryRunNode's default node
// with the README's cluster CIDRs, one Config per family.
func examplesSnapshot(t *testing.T) (*endpoints.Snapshot, []*iptables.Config) {
	t.Helper()
	in, errs := manifest.Read([]string{"../../manifests/examples/"})
	if in == nil {
		t.Fatal(errs)
	}
	opts := dryRunOptions{mode: "iptables", ipFamily: "auto", detectLocalMode: "ClusterCIDR", masqueradeBit: 14,
		clusterCIDRs: stringList{"10.244.0.0/16", "fd00:244::/56"}}
	facts, err := dryRunNode(&opts, in.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	configs, err := iptablesConfigs(&opts, facts)
	if err != nil {
		t.Fatal(err)
	}
	tracker := endpoints.NewTracker(facts.Name)
	for _, svc := range in.Services {
		_ = tracker.OnServiceUpdate(svc)
	}
	for _, slice := range in.EndpointSlices {
		_ = tracker.OnEndpointSliceUpdate(slice)
	}
	return tracker.Snapshot(), configs
}

// TestDiffFamilyAgainstASyncedKernel runs diffFamily against the strict fake iptables
// after the daemon's Proxier synced it: nothing to change, for both families. Then a
// rule deleted behind its back, and a stale chain, show up. mutation-checked:
// rendering without the kernel's nat chain names (Render(snap, cfg, nil)) misses the
// stale chain.
func TestDiffFamilyAgainstASyncedKernel(t *testing.T) {
	ctx := context.Background()
	snap, configs := examplesSnapshot(t)
	if len(configs) != 2 {
		t.Fatalf("want two families, got %d", len(configs))
	}
	for _, cfg := range configs {
		t.Run(string(cfg.Family), func(t *testing.T) {
			fake := xtablestest.NewFake(rulesetFamily(cfg.Family))
			p, err := iptables.NewProxier(cfg, fake, time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Sync(ctx, snap); err != nil {
				t.Fatal(err)
			}
			if got := nonEmpty(t, ctx, fake, cfg, snap); len(got) != 0 {
				t.Fatalf("diff right after a sync:\n%s", cmp.Diff(map[string]string{}, got))
			}

			// Delete the first endpoint chain's last rule (its DNAT) and add a stale
			// service chain.
			saved, err := fake.SaveTable(ctx, xtables.TableNAT)
			if err != nil {
				t.Fatal(err)
			}
			var dnat string
			for _, line := range strings.Split(string(saved), "\n") {
				if strings.HasPrefix(line, "-A KUBE-SEP-") && strings.Contains(line, "-j DNAT") {
					dnat = strings.TrimPrefix(line, "-A ")
					break
				}
			}
			tamper := "*nat\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n-D " + dnat + "\nCOMMIT\n"
			if err := fake.Restore(ctx, []byte(tamper)); err != nil {
				t.Fatal(err)
			}
			got := nonEmpty(t, ctx, fake, cfg, snap)
			chain := strings.Fields(dnat)[0]
			for _, want := range []string{"+-A " + chain + " ", "-:KUBE-SVC-AAAAAAAAAAAAAAAA\n"} {
				if !strings.Contains(got["nat"], "\n"+want) {
					t.Errorf("the nat diff lacks %q:\n%s", want, got["nat"])
				}
			}
			if len(got) != 1 {
				t.Errorf("want a nat diff only, got:\n%v", got)
			}
		})
	}
}

func nonEmpty(t *testing.T, ctx context.Context, fake *xtablestest.Fake, cfg *iptables.Config, snap *endpoints.Snapshot) map[string]string {
	t.Helper()
	diffs, err := diffFamily(ctx, fake, cfg, snap)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range diffs {
		if d.Diff != "" {
			out[d.Table] = d.Diff
		}
	}
	return out
}

// TestDryRunConfigFile reads a daemon configuration file into dry-run's options; a
// flag given on the command line wins over the file. mutation-checked: letting the
// file win over explicit flags fails on masqueradeBit.
func TestDryRunConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.conf")
	config := `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: 10.244.0.0/16,fd00:244::/56
hostnameOverride: Node-7
detectLocalMode: InterfaceNamePrefix
detectLocal:
  interfaceNamePrefix: veth
nodePortAddresses: ["primary"]
iptables:
  masqueradeBit: 10
  masqueradeAll: true
  localhostNodePorts: true
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig
`
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := dryRunOptions{mode: "iptables", ipFamily: "auto", detectLocalMode: "ClusterCIDR", masqueradeBit: 12}
	ipvsOpts, diffOpts := &ipvsDryRunOptions{}, &diffDryRunOptions{backend: "auto"}
	explicit := func(flag string) bool { return flag == "iptables-masquerade-bit" }
	if _, err := applyConfigFile(&opts, ipvsOpts, diffOpts, path, explicit); err != nil {
		t.Fatal(err)
	}
	want := dryRunOptions{
		mode: "iptables", ipFamily: "auto", kubeconfig: "/var/lib/kube-proxy/kubeconfig", nodeName: "node-7",
		clusterCIDRs: stringList{"10.244.0.0/16", "fd00:244::/56"}, masqueradeAll: true, nodePortCIDRs: stringList{"primary"},
		localhostPorts: true, detectLocalMode: "InterfaceNamePrefix", interfaceNamePrefix: "veth",
		masqueradeBit: 12, // given on the command line
	}
	if diff := cmp.Diff(want, opts, cmp.AllowUnexported(dryRunOptions{})); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}

	var stderr bytes.Buffer
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte(strings.Replace(config, "masqueradeBit: 10", "masqueradeBit: 40", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"dry-run", "--diff", "--config", bad}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "masqueradeBit") {
		t.Errorf("an invalid file: exit %d, stderr %q; want 2 naming masqueradeBit", code, stderr.String())
	}
}

// TestDryRunDiffUsage checks the errors found before the kernel is read: exit 2.
func TestDryRunDiffUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dry-run", "--diff"}, "needs --kubeconfig"},
		{[]string{"dry-run", "--diff", "--mode", "nftables", "-f", "x"}, "want iptables or ipvs"},
		{[]string{"dry-run", "--diff", "--iptables-backend", "both", "-f", "x"}, "both"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, stdout.String(), stderr.String(), tc.want)
		}
	}
}
