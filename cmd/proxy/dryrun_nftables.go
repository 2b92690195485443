package main

import (
	"context"
	"fmt"
	"io"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/kubeproxyconfig"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// dryRunNFTables is `switchyard dry-run --mode nftables`: per IP family, the exact
// `nft -f` input of the daemon's first full sync on a node without a kube-proxy table.
// Without --nodeport-addresses, node ports answer on the primary addresses only, as
// kube-proxy (and the daemon) default to in nftables mode. --feature-gates
// KubeProxyNFTablesLocalhostNodePorts=true renders the localhost node-port rejects.
func dryRunNFTables(ctx context.Context, opts *dryRunOptions, stdout, stderr io.Writer) int {
	if len(opts.files) == 0 && opts.kubeconfig == "" {
		fmt.Fprintln(stderr, errNoInput)
		return 2
	}
	if len(opts.nodePortCIDRs) == 0 {
		withPrimary := *opts
		withPrimary.nodePortCIDRs = stringList{"primary"}
		opts = &withPrimary
	}
	gate, err := kubeproxyconfig.NewFeatureGate()
	if err == nil {
		err = gate.SetFromMap(opts.featureGates)
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: --feature-gates: %v\n", err)
		return 2
	}
	in, code := streamRenderInput(ctx, opts, stderr)
	if in == nil {
		return code
	}
	for i, ic := range in.configs {
		cfg := &nftables.Config{FamilyConfig: ic.FamilyConfig}
		cfg.LocalhostNodePortRejects = nftables.LocalhostNodePortRejects(gate.Enabled(kubeproxyconfig.FeatureNFTablesLocalhostNodePorts),
			node.NodePortsNameLoopback(opts.nodePortCIDRs, cfg.Family))
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "switchyard: %s: %v\n", cfg.Family, err)
			return 2
		}
		fake := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
		plan := nftables.Render(fake.NewTransaction, in.snap, cfg, nftables.EmptyKernel())
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		endpointCount := 0
		for _, eps := range in.snap.Endpoints {
			endpointCount += len(endpoints.EndpointsOf(eps, cfg.Family))
		}
		fmt.Fprintf(stdout, "# switchyard dry-run: node %s, %s, nftables, %d service ports, %d endpoints, %d operations\n",
			in.facts.Name, cfg.Family, plan.Stats.Services, endpointCount, plan.NumOperations())
		fmt.Fprintf(stdout, "# Input for: nft -f - (table %s %s)\n", cfg.NFTFamily(), nftables.TableName)
		if _, err := io.WriteString(stdout, plan.String()); err != nil {
			fmt.Fprintf(stderr, "switchyard: writing output: %v\n", err)
			return 1
		}
	}
	return 0
}
