package nftables

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/test/testbed"
)

var updateFixtures = flag.Bool("update-fixtures", false,
	"rewrite pkg/nftables/nftmodel/testdata/kube-proxy-*.nft from the pinned kube-proxy's tables")

// fixtureDir is where nftmodel's unit tests read kube-proxy's real tables.
func fixtureDir(t *testing.T) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "pkg", "nftables", "nftmodel", "testdata")
}

// TestNFTablesFixtures runs the pinned kube-proxy in nftables mode on the
// world and checks its tables equal the committed fixtures up to element
// order; with -update-fixtures it rewrites the fixtures nftmodel's unit
// tests read.
func TestNFTablesFixtures(t *testing.T) {
	testbed.Require(t)
	w := startWorld(t)
	w.cluster.AddKubeProxy(t, w.node1, "nftables")
	ctx := t.Context()
	if _, err := testbed.WaitForReply(ctx, w.node1, "tcp", "10.96.1.1:80", 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	for _, family := range []string{"ip", "ip6"} {
		dump, err := nftList(ctx, w.node1, family)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(fixtureDir(t), "kube-proxy-"+family+".nft")
		if *updateFixtures {
			if err := os.WriteFile(path, []byte(dump), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		committed, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The fixtures must be what kube-proxy writes for today's world:
		// a change to world_test.go needs -update-fixtures.
		compareTables(t, path, string(committed), "kube-proxy's "+family+" table now", dump)
	}
}
