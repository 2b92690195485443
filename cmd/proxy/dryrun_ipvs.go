package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

// ipvsDryRunOptions are dry-run's IPVS-mode flags.
type ipvsDryRunOptions struct {
	scheduler string
	strictARP bool
}

// registerIPVSDryRun adds the IPVS-mode flags to dry-run's flag set.
func registerIPVSDryRun(fs *pflag.FlagSet) *ipvsDryRunOptions {
	o := &ipvsDryRunOptions{}
	fs.StringVar(&o.scheduler, "ipvs-scheduler", ipvs.DefaultScheduler, "with --mode ipvs: the default IPVS scheduler")
	fs.BoolVar(&o.strictARP, "ipvs-strict-arp", false, "with --mode ipvs: show the strict-ARP sysctls")
	return o
}

// dryRunIPVS is `switchyard dry-run --mode ipvs`: per IP family, the IPVS table in
// `ipvsadm -Sn` format, the addresses bound on kube-ipvs0, the ipsets in `ipset save`
// format and the companion iptables-restore payload, exactly as the daemon would
// program them.
func dryRunIPVS(ctx context.Context, opts *dryRunOptions, ipvsOpts *ipvsDryRunOptions, stdout, stderr io.Writer) int {
	if len(opts.files) == 0 && opts.kubeconfig == "" {
		fmt.Fprintln(stderr, errNoInput)
		return 2
	}
	if !ipvs.ValidScheduler(ipvsOpts.scheduler) {
		fmt.Fprintf(stderr, "switchyard: --ipvs-scheduler %q: want one of %v\n", ipvsOpts.scheduler, ipvs.Schedulers)
		return 2
	}
	// The iptables configs carry the same node facts (family, node IPs, pod CIDR,
	// node-port addresses); IPVS mode adds its own settings.
	in, code := streamRenderInput(ctx, opts, stderr)
	if in == nil {
		return code
	}
	facts, snap, iptConfigs := in.facts, in.snap, in.configs
	for i, ic := range iptConfigs {
		cfg := ipvsConfigFrom(ic, ipvsOpts.scheduler, ipvsOpts.strictARP)
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "switchyard: %s: %v\n", cfg.Family, err)
			return 2
		}
		st := ipvs.Render(snap, cfg)
		for _, err := range st.Errors {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		writeIPVSState(stdout, cfg, facts.Name, snap, st)
	}
	return 0
}

// ipvsConfigFrom derives an IPVS Config from the iptables one for the same family.
func ipvsConfigFrom(ic *iptables.Config, scheduler string, strictARP bool) *ipvs.Config {
	return &ipvs.Config{FamilyConfig: ic.FamilyConfig, Scheduler: scheduler, StrictARP: strictARP}
}

// writeIPVSState prints one family's state in the formats of the tools that would
// program it, each section introduced by a comment.
func writeIPVSState(w io.Writer, cfg *ipvs.Config, nodeName string, snap *endpoints.Snapshot, st *ipvs.State) {
	endpointCount := 0
	for _, eps := range snap.Endpoints {
		endpointCount += len(endpoints.EndpointsOf(eps, cfg.Family))
	}
	fmt.Fprintf(w, "# switchyard dry-run: node %s, %s, ipvs, %d service ports, %d endpoints, %d virtual servers\n",
		nodeName, cfg.Family, len(st.Fragments), endpointCount, len(st.Servers))
	fmt.Fprintln(w, "# IPVS table (ipvsadm -Sn):")
	for _, s := range st.Servers {
		fmt.Fprint(w, ipvs.FormatIPVSAdm(s.VirtualServer, s.RealServers))
	}
	fmt.Fprintf(w, "# Addresses on %s (dummy, down):\n", ipvs.DummyInterface)
	bits := 32
	if cfg.Family == v1.IPv6Protocol {
		bits = 128
	}
	for _, a := range st.Addresses {
		fmt.Fprintf(w, "#   %s/%d\n", a, bits)
	}
	fmt.Fprintln(w, "# Sysctls:")
	for _, kv := range ipvs.Sysctls(cfg) {
		fmt.Fprintf(w, "#   %s = %s\n", kv[0], kv[1])
	}
	fmt.Fprintln(w, "# ipsets (ipset save):")
	fmt.Fprint(w, st.Sets.Save(cfg.Family))
	fmt.Fprintln(w, "# Jumps from the built-in chains, ensured before each full sync:")
	for _, h := range ipvs.Hooks() {
		fmt.Fprintf(w, "#   -t %s -I %s %s\n", h.Table, h.Chain, shellJoin(h.Args))
	}
	tool := "iptables-restore"
	if cfg.Family == v1.IPv6Protocol {
		tool = "ip6tables-restore"
	}
	fmt.Fprintf(w, "# Companion rules, input for: %s -w 5 --noflush\n", tool)
	_, _ = w.Write(ipvs.RenderRules(cfg))
}
