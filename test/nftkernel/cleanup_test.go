package nftkernel

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanupDeletesTheKubeProxyTables loads nftables mode's tables of both families
// and a foreign table into a namespace, runs `switchyard cleanup` there (what
// `kube-proxy --cleanup` runs too), and checks that exactly the kube-proxy tables are
// gone; --dry-run deletes nothing, and a second run finds nothing.
//
// mutation-checked: leaving cleanNFTables out of cleanupCommand fails it.
func TestCleanupDeletesTheKubeProxyTables(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := netnsNFT(t, "cleanup")
	for _, family := range []string{"ipv4", "ipv6"} {
		out, err := exec.Command(bin, "dry-run", "--mode", "nftables", "--ip-family", family, "-f", "../../manifests/examples/").Output()
		if err != nil {
			t.Fatalf("dry-run: %v", err)
		}
		load := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		load.Stdin = bytes.NewReader(out)
		if msg, err := load.CombinedOutput(); err != nil {
			t.Fatalf("nft -f: %v\n%s", err, msg)
		}
	}
	nftIn(t, ns, "add", "table", "inet", "foreign")
	nftIn(t, ns, "add", "chain", "inet", "foreign", "input", "{ type filter hook input priority 0 ; }")

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns, bin, "cleanup"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cleanup %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("--dry-run"); !strings.Contains(out, "would delete table ip kube-proxy") || !strings.Contains(out, "would delete table ip6 kube-proxy") {
		t.Errorf("dry run does not list the tables:\n%s", out)
	}
	if tables := nftIn(t, ns, "list", "tables"); strings.Count(tables, "kube-proxy") != 2 {
		t.Fatalf("--dry-run deleted tables:\n%s", tables)
	}
	out := run()
	tables := nftIn(t, ns, "list", "tables")
	if strings.Contains(tables, "kube-proxy") || !strings.Contains(tables, "table inet foreign") {
		t.Errorf("after cleanup, tables:\n%s\ncleanup said:\n%s", tables, out)
	}
	if again := run(); strings.Count(again, "nftables") < 2 || !strings.Contains(again, "# nftables ip: nothing to remove") {
		t.Errorf("second cleanup:\n%s", again)
	}
}
