package nftkernel

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExplainLiveReadsTheKernel loads `switchyard dry-run --mode nftables` over the
// bundled examples into a fresh namespace's kernel, then runs `switchyard explain
// --mode nftables --live` there: it reads the table back with the real `nft list
// table` (the kernel's own text, not knftables' `add` lines), and must give every
// packet the same JSON answer as the offline explain renders. mutation-checked:
// making explain's ListNFTable list the ip6 table for IPv4 fails every IPv4 packet
// (exit 1, no output).
func TestExplainLiveReadsTheKernel(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	common := []string{"-f", "../../manifests/examples/", "--cluster-cidr", "10.244.0.0/16,fd00:244::/56", "--node", "node-a"}
	var table, dryRunErr bytes.Buffer
	dryRun := exec.Command(bin, append([]string{"dry-run", "--mode", "nftables"}, common...)...)
	dryRun.Stdout, dryRun.Stderr = &table, &dryRunErr
	if err := dryRun.Run(); err != nil {
		t.Fatalf("dry-run: %v\n%s", err, dryRunErr.String())
	}
	ns := netnsNFT(t, "explain") // `nft` on PATH now runs inside ns
	load := exec.Command("ip", "netns", "exec", ns, realNFT, "-f", "-")
	load.Stdin = bytes.NewReader(table.Bytes())
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}

	for name, pkt := range map[string][]string{
		"cluster IP":    {"--src", "10.244.1.99", "--dst", "10.96.10.10:80"},
		"hairpin":       {"--src", "10.244.1.5", "--dst", "10.96.10.10:80"},
		"affinity":      {"--src", "192.0.2.99", "--dst", "192.168.10.11:30443", "--from", "outside"},
		"no endpoints":  {"--src", "10.244.1.99", "--dst", "10.96.50.50:80"},
		"unknown port":  {"--src", "10.244.1.99", "--dst", "10.96.10.10:81"},
		"LB allowed":    {"--src", "203.0.113.5", "--dst", "198.51.100.20:443", "--from", "outside"},
		"LB denied":     {"--src", "192.0.2.99", "--dst", "198.51.100.20:443", "--from", "outside"},
		"external IP":   {"--src", "192.0.2.99", "--dst", "192.0.2.50:9090", "--from", "outside"},
		"from the node": {"--src", "192.168.10.11", "--dst", "10.96.20.20:443", "--from", "node"},
		"IPv6":          {"--src", "fd00:244::99", "--dst", "[fd00:96::10]:80"},
	} {
		t.Run(name, func(t *testing.T) {
			explain := func(extra ...string) (int, string) {
				args := append(append(append([]string{"explain", "--mode", "nftables", "-o", "json"}, common...), extra...), pkt...)
				var stdout, stderr bytes.Buffer
				cmd := exec.Command(bin, args...)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if code == 2 || stdout.Len() == 0 {
					t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
				}
				return code, stdout.String()
			}
			wantCode, want := explain()
			gotCode, got := explain("--live", "--node-ip", "192.168.10.11,fd00:10::11")
			if gotCode != wantCode {
				t.Errorf("live exit %d, offline %d", gotCode, wantCode)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("live (the kernel's table) differs from offline (-offline +live):\n%s", diff)
			}
		})
	}
}
