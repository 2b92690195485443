package main

import (
	"context"
	"fmt"
	"io"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
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
	opts, localhostGate, err := nftablesOptions(opts)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return 2
	}
	in, code := streamRenderInput(ctx, opts, stderr)
	if in == nil {
		return code
	}
	for i, ic := range in.configs {
		cfg, err := nftablesConfig(ic, opts, localhostGate)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
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

// nftablesOptions applies nftables mode's defaults to the options of a dry run or an
// explain: without --nodeport-addresses, node ports answer on the primary addresses
// only, as kube-proxy (and the daemon) default to in nftables mode. It also reports
// whether --feature-gates turns KubeProxyNFTablesLocalhostNodePorts on.
func nftablesOptions(opts *dryRunOptions) (*dryRunOptions, bool, error) {
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
		return nil, false, fmt.Errorf("--feature-gates: %w", err)
	}
	return opts, gate.Enabled(kubeproxyconfig.FeatureNFTablesLocalhostNodePorts), nil
}

// nftablesConfig is nftables mode's Config for one family of the node, as the daemon
// builds it.
func nftablesConfig(ic *iptables.Config, opts *dryRunOptions, localhostGate bool) (*nftables.Config, error) {
	cfg := &nftables.Config{FamilyConfig: ic.FamilyConfig}
	cfg.LocalhostNodePortRejects = nftables.LocalhostNodePortRejects(localhostGate, node.NodePortsNameLoopback(opts.nodePortCIDRs, cfg.Family))
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Family, err)
	}
	return cfg, nil
}
