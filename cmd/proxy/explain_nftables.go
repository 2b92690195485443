package main

import (
	"context"
	"fmt"
	"io"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/explain"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// explainNFTables explains pkt with nftables mode's table, rendered from the objects
// as `dry-run --mode nftables` renders it, or read live with `nft list table`. On failure it returns nil and the exit code.
func explainNFTables(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.Explanation, int) {
	var in *explain.NFTablesInput
	var code int
	if eo.isLive(opts) {
		in, code = liveNFTablesInput(ctx, opts, eo, pkt, stderr)
	} else {
		in, code = offlineNFTablesInput(ctx, opts, pkt, stderr)
	}
	if in == nil {
		return nil, code
	}
	e, err := explain.NFTables(*in, pkt)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 1
	}
	return e, 0
}

// offlineNFTablesInput renders the packet's family as nftables mode would program it
// on a node without a kube-proxy table (dryRunNFTables's render: node ports on the
// primary addresses unless --nodeport-addresses says otherwise, --feature-gates for
// the localhost node-port rejects), applies it to a strict knftables.Fake and parses
// the fake's table with nftmodel.
func offlineNFTablesInput(ctx context.Context, opts *dryRunOptions, pkt explain.Packet, stderr io.Writer) (*explain.NFTablesInput, int) {
	opts, localhostGate, err := nftablesOptions(opts)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 2
	}
	rin, code := loadRenderInput(ctx, opts, stderr)
	if rin == nil {
		return nil, code
	}
	family := endpoints.FamilyOf(pkt.Dst.Addr())
	for _, ic := range rin.configs {
		if ic.Family != family {
			continue
		}
		cfg, err := nftablesConfig(ic, opts, localhostGate)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
			return nil, 2
		}
		fake := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
		plan := nftables.Render(fake.NewTransaction, rin.snap, cfg, nftables.EmptyKernel())
		if err := nftables.Apply(ctx, fake, plan); err != nil {
			fmt.Fprintf(stderr, "switchyard: the rendered %s table does not load: %v\n", family, err)
			return nil, 1
		}
		rs, err := nftmodel.Parse(fake.Dump())
		if err != nil {
			fmt.Fprintf(stderr, "switchyard: the rendered %s table cannot be traced: %v\n", family, err)
			return nil, 1
		}
		return &explain.NFTablesInput{
			Rules:        rs,
			NodeAddrs:    cfg.NodeIPs,
			NodeName:     rin.facts.Name,
			Owners:       explain.OwnersFromSlices(rin.objs.EndpointSlices),
			Snapshot:     rin.snap,
			PodInterface: podInterface(opts),
		}, 0
	}
	fmt.Fprintf(stderr, "switchyard: node %s has no %s rules to explain %s with (see --ip-family, --node-ip)\n", rin.facts.Name, family, pkt.Dst)
	return nil, 2
}
