package main

import (
	"context"
	"fmt"
	"io"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/explain"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

// explainIPVS explains pkt with IPVS mode's state: rendered from the objects as
// `dry-run --mode ipvs` renders it, or read live from the node's IPVS table, ipsets
// and companion rules. On failure it returns nil and the exit code.
func explainIPVS(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.Explanation, int) {
	var in *explain.IPVSInput
	var code int
	if eo.isLive(opts) {
		in, code = liveIPVSInput(ctx, opts, eo, pkt, stderr)
	} else {
		in, code = offlineIPVSInput(ctx, opts, eo, pkt, stderr)
	}
	if in == nil {
		return nil, code
	}
	e, err := explain.ExplainIPVS(in, pkt)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 1
	}
	return e, 0
}

// offlineIPVSInput renders the packet's family as IPVS mode would program it.
func offlineIPVSInput(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.IPVSInput, int) {
	if !ipvs.ValidScheduler(eo.ipvs.scheduler) {
		fmt.Fprintf(stderr, "switchyard: --ipvs-scheduler %q: want one of %v\n", eo.ipvs.scheduler, ipvs.Schedulers)
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
		cfg := ipvsConfigFrom(ic, eo.ipvs.scheduler, eo.ipvs.strictARP)
		in, err := explain.IPVSInputFromRender(rin.snap, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
			return nil, 1
		}
		in.Owners = explain.OwnersFromSlices(rin.objs.EndpointSlices)
		in.PodInterface = podInterface(opts)
		return in, 0
	}
	fmt.Fprintf(stderr, "switchyard: node %s has no %s rules to explain %s with (see --ip-family, --node-ip)\n", rin.facts.Name, family, pkt.Dst)
	return nil, 2
}

// liveIPVSInput reads the packet's family from the node: the IPVS table, the ipsets,
// kube-ipvs0's addresses and the companion rules (iptables-save). Objects from -f or
// --kubeconfig, when given, name the Services, pods and nodes.
func liveIPVSInput(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.IPVSInput, int) {
	f, code := readLiveFacts(ctx, opts, eo, pkt, stderr)
	if f == nil {
		return nil, code
	}
	k, release, err := f.kernel.IPVS()
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 1
	}
	defer release()
	in, err := explain.ReadIPVSInput(ctx, k, f.family, f.rules, f.nodeAddrs, f.snap, f.nodeName)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 1
	}
	in.Owners = f.owners
	in.PodInterface = podInterface(opts)
	return in, 0
}
