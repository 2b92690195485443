package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	cliflag "k8s.io/component-base/cli/flag"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// errNoInput is dry-run's usage error without input.
const errNoInput = "switchyard: dry-run needs -f FILE_OR_DIR or --kubeconfig\nRun 'switchyard dry-run --help' for usage."

// dryRunOptions are the flags of `switchyard dry-run`.
type dryRunOptions struct {
	files          stringList
	kubeconfig     string
	nodeName       string
	nodeIPs        stringList
	clusterCIDRs   stringList
	masqueradeAll  bool
	nodePortCIDRs  stringList
	mode           string
	ipFamily       string
	localhostPorts bool
	// Local-traffic detection, masquerade mark and conntrack, as the daemon's flags.
	detectLocalMode     string
	bridgeInterface     string
	interfaceNamePrefix string
	nodeCIDRs           stringList
	masqueradeBit       int
	tcpBeLiberal        bool
	nfacct              bool
	// featureGates are kube-proxy's --feature-gates; only
	// KubeProxyNFTablesLocalhostNodePorts changes a render (--mode nftables).
	featureGates map[string]bool
}

// register adds dry-run's flags to fs. -f (--filename) is repeatable and splits at
// commas, as kubectl's; the other list flags do the same.
func (o *dryRunOptions) register(fs *pflag.FlagSet) {
	fs.VarP(&o.files, "filename", "f", "manifest `FILE_OR_DIR` (YAML or JSON; repeatable; - for stdin); positional arguments are files too")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "read Services, EndpointSlices and Nodes from the cluster of this kubeconfig `file` instead of files")
	fs.StringVar(&o.nodeName, "node", "", "the node to render for (default: the only Node in the input, else \"node\")")
	fs.Var(&o.nodeIPs, "node-ip", "node addresses, one per family (default: the Node's InternalIPs)")
	fs.Var(&o.clusterCIDRs, "cluster-cidr", "pod CIDRs, one per family; traffic from outside them is masqueraded")
	fs.BoolVar(&o.masqueradeAll, "masquerade-all", false, "masquerade all traffic to service IPs")
	fs.Var(&o.nodePortCIDRs, "nodeport-addresses", "CIDRs of the node addresses that accept node ports, or the keywords primary, localhost, all (default: all)")
	fs.StringVar(&o.mode, "mode", "iptables", "proxy mode: iptables, ipvs or nftables")
	fs.StringVar(&o.ipFamily, "ip-family", "auto", "ipv4, ipv6, or auto (every family the node has addresses in)")
	fs.BoolVar(&o.localhostPorts, "iptables-localhost-nodeports", false, "accept IPv4 node ports on 127.0.0.1 (needs route_localnet)")
	fs.StringVar(&o.detectLocalMode, "detect-local-mode", "ClusterCIDR", "how pod traffic is told apart: ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix")
	fs.StringVar(&o.bridgeInterface, "pod-bridge-interface", "", "the pods' bridge, for --detect-local-mode BridgeInterface")
	fs.StringVar(&o.interfaceNamePrefix, "pod-interface-name-prefix", "", "the prefix of the pods' interfaces, for --detect-local-mode InterfaceNamePrefix")
	fs.Var(&o.nodeCIDRs, "node-cidr", "the node's pod CIDRs, one per family, for --detect-local-mode NodeCIDR (default: the Node's spec.podCIDRs)")
	fs.IntVar(&o.masqueradeBit, "iptables-masquerade-bit", 14, "the fwmark bit (0-31) that marks packets for masquerading")
	fs.BoolVar(&o.tcpBeLiberal, "conntrack-tcp-be-liberal", false, "render as on a node with nf_conntrack_tcp_be_liberal=1 (no ctstate INVALID drop rule)")
	fs.Var(cliflag.NewMapStringBool(&o.featureGates), "feature-gates", "kube-proxy feature gates, A=true,B=false; KubeProxyNFTablesLocalhostNodePorts=true adds nftables mode's localhost node-port rejects")
	fs.BoolVar(&o.nfacct, "nfacct", false, "render as on a kernel with nfacct: INVALID drops and localhost node-port packets are counted (-m nfacct)")
}

// dryRun implements `switchyard dry-run`: it reads objects, renders exactly the payload
// the daemon would apply on that node, and prints it. Problems with single objects are
// reported on stderr and do not stop the others; the exit code is non-zero only when
// nothing usable could be read (1) or the flags are wrong (2).
func dryRun(ctx context.Context, opts *dryRunOptions, ipvsOpts *ipvsDryRunOptions, stdout, stderr io.Writer) int {
	if opts.mode == "ipvs" {
		return dryRunIPVS(ctx, opts, ipvsOpts, stdout, stderr)
	}
	if opts.mode == "nftables" {
		return dryRunNFTables(ctx, opts, stdout, stderr)
	}
	if opts.mode != "iptables" {
		fmt.Fprintf(stderr, "switchyard: --mode %q: want iptables, ipvs or nftables\n", opts.mode)
		return 2
	}
	if len(opts.files) == 0 && opts.kubeconfig == "" {
		fmt.Fprintln(stderr, errNoInput)
		return 2
	}

	in, code := streamRenderInput(ctx, opts, stderr)
	if in == nil {
		return code
	}
	facts, snap := in.facts, in.snap
	configs := in.configs

	for i, cfg := range configs {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		// Written as it is rendered: the whole payload is ~50 MB at 10k services.
		plan := iptables.RenderStream(snap, cfg, nil)
		writeHeader(stdout, cfg, facts, snap, plan.Stats)
		if _, err := plan.WriteTo(stdout); err != nil {
			fmt.Fprintf(stderr, "switchyard: writing output: %v\n", err)
			return 1
		}
	}
	return 0
}

// renderInput is what dry-run and explain render from: the objects read, the node
// rendered for, one renderer Config per family, and the model's snapshot.
type renderInput struct {
	objs    *objects
	facts   node.Facts
	configs []*iptables.Config
	snap    *endpoints.Snapshot
}

// loadRenderInput reads the objects, works out the node and its per-family configs
// and builds the snapshot, reporting problems on stderr. On failure it returns nil
// and the exit code: 1 when nothing usable could be read, 2 for bad flags.
func loadRenderInput(ctx context.Context, opts *dryRunOptions, stderr io.Writer) (*renderInput, int) {
	objs, readErrs := readObjects(ctx, opts)
	for _, err := range readErrs {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
	}
	if objs == nil || (len(objs.Services) == 0 && len(objs.EndpointSlices) == 0) {
		fmt.Fprintln(stderr, "switchyard: no Services or EndpointSlices could be read")
		return nil, 1
	}

	facts, configs, err := nodeAndConfigs(opts, objs.Nodes)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 2
	}
	return &renderInput{objs: objs, facts: facts, configs: configs, snap: modelSnapshot(stderr, objs, facts.Name)}, 0
}

// nodeAndConfigs works out the node rendered for and its per-family configs from the
// flags and the Nodes read; an error is a bad flag (exit code 2).
func nodeAndConfigs(opts *dryRunOptions, nodes []*v1.Node) (node.Facts, []*iptables.Config, error) {
	facts, err := dryRunNode(opts, nodes)
	if err != nil {
		return facts, nil, err
	}
	configs, err := iptablesConfigs(opts, facts)
	return facts, configs, err
}

// modelSnapshot feeds the objects to a tracker for nodeName and returns its snapshot,
// reporting each object the model refuses.
func modelSnapshot(stderr io.Writer, objs *objects, nodeName string) *endpoints.Snapshot {
	tracker := endpoints.NewTracker(nodeName)
	for _, svc := range objs.Services {
		reportModelError(stderr, objs.source(svc), tracker.OnServiceUpdate(svc))
	}
	for _, slice := range objs.EndpointSlices {
		reportModelError(stderr, objs.source(slice), tracker.OnEndpointSliceUpdate(slice))
	}
	return tracker.Snapshot()
}

// reportModelError prints each problem the model found with an object on its own line,
// prefixed with where the object was read.
func reportModelError(stderr io.Writer, source string, err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		fmt.Fprintf(stderr, "switchyard: %s: %v\n", source, e)
	}
}

// writeHeader prints, as restore-file comments, what the payload is for and the hook
// rules that the daemon ensures outside the payload.
func writeHeader(w io.Writer, cfg *iptables.Config, facts node.Facts, snap *endpoints.Snapshot, stats iptables.Stats) {
	tool := "iptables-restore"
	if cfg.Family == v1.IPv6Protocol {
		tool = "ip6tables-restore"
	}
	endpointCount := 0
	for _, eps := range snap.Endpoints {
		endpointCount += len(endpoints.EndpointsOf(eps, cfg.Family))
	}
	fmt.Fprintf(w, "# switchyard dry-run: node %s, %s, %d service ports, %d endpoints\n",
		facts.Name, cfg.Family, stats.Services, endpointCount)
	fmt.Fprintf(w, "# Jumps from the built-in chains, ensured before each full sync:\n")
	for _, h := range iptables.Hooks(cfg) {
		fmt.Fprintf(w, "#   -t %s -I %s %s\n", h.Table, h.Chain, shellJoin(h.Args))
	}
	fmt.Fprintf(w, "# Input for: %s -w 5 --noflush\n", tool)
}

// dryRunNode works out which node to render for, from the flags and any Node objects.
func dryRunNode(opts *dryRunOptions, nodes []*v1.Node) (node.Facts, error) {
	var facts node.Facts
	switch {
	case opts.nodeName != "":
		facts.Name = opts.nodeName
	case len(nodes) == 1:
		facts.Name = nodes[0].Name
	default:
		facts.Name = "node"
	}
	for _, n := range nodes {
		if n.Name != facts.Name {
			continue
		}
		fromObject, err := node.FromNode(n)
		if err != nil && len(opts.nodeIPs) == 0 {
			return facts, err
		}
		facts = fromObject
		facts.Name = n.Name
	}
	if len(opts.nodeCIDRs) > 0 {
		cidrs, err := parsePrefixes("node-cidr", opts.nodeCIDRs)
		if err != nil {
			return facts, err
		}
		facts.PodCIDRs = cidrs
	}
	if len(opts.nodeIPs) > 0 {
		ips, err := parseAddrs("node-ip", opts.nodeIPs)
		if err != nil {
			return facts, err
		}
		facts.IPs = ips
	}
	return facts, nil
}

// iptablesConfigs builds one renderer Config per IP family to render.
func iptablesConfigs(opts *dryRunOptions, facts node.Facts) ([]*iptables.Config, error) {
	var families []v1.IPFamily
	switch strings.ToLower(opts.ipFamily) {
	case "ipv4", "4":
		families = []v1.IPFamily{v1.IPv4Protocol}
	case "ipv6", "6":
		families = []v1.IPFamily{v1.IPv6Protocol}
	case "auto", "":
		families = facts.Families()
		if len(families) == 0 {
			families = []v1.IPFamily{v1.IPv4Protocol}
		}
	default:
		return nil, fmt.Errorf("--ip-family %q: want ipv4, ipv6 or auto", opts.ipFamily)
	}
	cidrs, err := parsePrefixes("cluster-cidr", opts.clusterCIDRs)
	if err != nil {
		return nil, err
	}
	familyOpts, err := opts.familyOptions(cidrs)
	if err != nil {
		return nil, err
	}
	var configs []*iptables.Config
	var errs []error
	for _, fc := range node.FamilyConfigs(facts, families, familyOpts) {
		cfg := &iptables.Config{
			FamilyConfig:        fc,
			LocalhostNodePorts:  opts.localhostPorts && fc.Family == v1.IPv4Protocol && fc.NodePortsOnLoopback,
			ConntrackTCPLiberal: opts.tcpBeLiberal,
			NFAcctCounters:      opts.nfacct,
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fc.Family, err))
		}
		configs = append(configs, cfg)
	}
	return configs, errors.Join(errs...)
}

// familyOptions checks the detect-local, node-port and masquerade flags as the
// daemon's Validate does, and gathers them.
func (o *dryRunOptions) familyOptions(clusterCIDRs []netip.Prefix) (node.Options, error) {
	var errs []error
	mode, err := node.ParseLocalMode(o.detectLocalMode)
	errs = append(errs, err)
	switch {
	case mode == node.LocalModeBridgeInterface && o.bridgeInterface == "":
		errs = append(errs, errors.New("--detect-local-mode BridgeInterface needs --pod-bridge-interface"))
	case mode == node.LocalModeInterfaceNamePrefix && o.interfaceNamePrefix == "":
		errs = append(errs, errors.New("--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix"))
	}
	if o.masqueradeBit < 0 || o.masqueradeBit > 31 {
		errs = append(errs, fmt.Errorf("--iptables-masquerade-bit %d: must be within [0, 31]", o.masqueradeBit))
	}
	errs = append(errs, node.ValidateNodePortAddresses("--nodeport-addresses", o.nodePortCIDRs))
	return node.Options{
		ClusterCIDRs:        clusterCIDRs,
		DetectLocalMode:     mode,
		BridgeInterface:     o.bridgeInterface,
		InterfaceNamePrefix: o.interfaceNamePrefix,
		NodePortAddresses:   o.nodePortCIDRs,
		MasqueradeAll:       o.masqueradeAll,
		MasqueradeBit:       int32(o.masqueradeBit),
	}, errors.Join(errs...)
}

// objects is what dry-run reads, with where each object came from.
type objects struct {
	Services       []*v1.Service
	EndpointSlices []*discovery.EndpointSlice
	Nodes          []*v1.Node
	// lookup names where an object came from.
	lookup func(obj any) string
}

// source names where an object came from, for messages: a file, document and line.
func (o *objects) source(obj any) string { return o.lookup(obj) }

// shellJoin joins arguments for a command line, quoting those with spaces.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t\"'") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}
