package nftkernel

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDryRunLoadsIntoTheKernel feeds `switchyard dry-run --mode nftables` over the
// bundled examples, as printed (header comments included), to `nft -f` in a fresh
// namespace per family, twice: the second time the table exists, as when Switchyard
// replaces a kube-proxy that ran in nftables mode.
func TestDryRunLoadsIntoTheKernel(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, family := range []string{"ipv4", "ipv6"} {
		t.Run(family, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "dry-run", "--mode", "nftables", "--ip-family", family, "-f", "../../manifests/examples/")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("dry-run: %v\n%s", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), "add element") {
				t.Fatalf("dry-run printed no elements:\n%s", stdout.String())
			}
			ns := netnsNFT(t, "dr"+family)
			for range 2 {
				load := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
				load.Stdin = bytes.NewReader(stdout.Bytes())
				if out, err := load.CombinedOutput(); err != nil {
					t.Fatalf("nft -f rejected the dry-run output: %v\n%s", err, out)
				}
			}
			nftFamily := map[string]string{"ipv4": "ip", "ipv6": "ip6"}[family]
			listed := nftIn(t, ns, "list", "map", nftFamily, "kube-proxy", "service-ips")
			if !strings.Contains(listed, "goto service-") {
				t.Errorf("service-ips has no service after loading:\n%s", listed)
			}
		})
	}
}
