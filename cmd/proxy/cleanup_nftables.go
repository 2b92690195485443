package main

import (
	"context"
	"fmt"
	"io"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/nftables"
)

// cleanNFTables deletes the kube-proxy table of both families, which Switchyard's and
// kube-proxy's nftables modes program, as `kube-proxy --cleanup` does; other tables
// stay. Without the nft binary (or nf_tables) there is nothing to do.
func cleanNFTables(ctx context.Context, stdout io.Writer, dryRun bool) error {
	for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		nftFamily := nftables.FamilyOf(family)
		nft, err := nftables.Open(family)
		if err != nil {
			fmt.Fprintf(stdout, "# nftables %s: not available (%v), skipped\n", nftFamily, err)
			continue
		}
		all, err := nft.(knftables.Interface).ListAll(ctx)
		if nftables.IsNotFound(err) {
			fmt.Fprintf(stdout, "# nftables %s: nothing to remove\n", nftFamily)
			continue
		}
		if err != nil {
			return fmt.Errorf("nftables %s: %w", nftFamily, err)
		}
		verb := "deleting"
		if dryRun {
			verb = "would delete"
		}
		fmt.Fprintf(stdout, "# nftables %s: %s table %s %s (%d chains, %d sets, %d maps)\n",
			nftFamily, verb, nftFamily, nftables.TableName, len(all["chain"]), len(all["set"]), len(all["map"]))
		if dryRun {
			continue
		}
		if err := nftables.Cleanup(ctx, nft); err != nil {
			return fmt.Errorf("nftables %s: %w", nftFamily, err)
		}
		if _, err := nft.List(ctx, "chain"); !nftables.IsNotFound(err) {
			return fmt.Errorf("nftables %s: table %s still present after cleanup", nftFamily, nftables.TableName)
		}
	}
	return nil
}
