package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/explain"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// liveKernel is what `switchyard explain --live` reads from the node, read-only.
type liveKernel interface {
	// Save returns iptables-save output for the family.
	Save(ctx context.Context, family v1.IPFamily, backend string) ([]byte, error)
	// LocalAddrs returns the addresses of the node's interfaces.
	LocalAddrs() ([]netip.Addr, error)
	// IPVS returns the node's IPVS table, ipsets and links, and a function that
	// releases them.
	IPVS() (explain.IPVSKernel, func(), error)
}

// hostKernel reads the host (the network namespace switchyard runs in).
type hostKernel struct{}

// Save runs iptables-save (or ip6tables-save) of the backend in use; reading the
// tables needs CAP_NET_ADMIN, nothing more.
func (hostKernel) Save(ctx context.Context, family v1.IPFamily, backend string) ([]byte, error) {
	var b xtables.Backend
	if backend == "auto" || backend == "" {
		report, err := xtables.DetectBackend(ctx)
		if err != nil {
			return nil, fmt.Errorf("detecting the iptables backend: %w", err)
		}
		b = report.Chosen
	} else {
		parsed, err := xtables.ParseBackend(backend)
		if err != nil || parsed == "" {
			return nil, fmt.Errorf("--iptables-backend %q: want auto, nft or legacy", backend)
		}
		b = parsed
	}
	ipt, err := xtables.NewExec(family, b, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return ipt.SaveAll(ctx)
}

// IPVS opens the kernel's IPVS table over netlink; the ipsets are read with the
// ipset program.
func (hostKernel) IPVS() (explain.IPVSKernel, func(), error) {
	handle, err := ipvs.NewIPVS()
	if err != nil {
		return explain.IPVSKernel{}, nil, fmt.Errorf("opening the IPVS table (is the ip_vs module loaded?): %w", err)
	}
	k := explain.IPVSKernel{IPVS: handle, Links: ipvs.NewLinks(), IPSets: ipvs.NewNetlinkIPSets()}
	return k, handle.Close, nil
}

// LocalAddrs lists the addresses on the host's interfaces.
func (hostKernel) LocalAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing the node's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// liveFacts is what live explain reads from the node in every mode: the packet
// family's iptables rules, the node's addresses and name, and, when -f or
// --kubeconfig is given, the objects that name Services, pods and nodes.
type liveFacts struct {
	kernel liveKernel
	family v1.IPFamily
	dump   []byte
	rules  *ruleset.Ruleset
	// whole is true when the whole dump parsed; false when rules hold the proxy's
	// chains alone.
	whole     bool
	nodeAddrs []netip.Addr
	nodeName  string
	owners    map[netip.Addr]explain.Owner
	snap      *endpoints.Snapshot
}

// readLiveFacts reads the node's rules for the packet's family (falling back to the
// proxy's chains alone when other software's rules cannot be parsed), its addresses
// (or --node-ip) and name, and the objects given with -f or --kubeconfig. On failure
// it returns nil and the exit code.
func readLiveFacts(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*liveFacts, int) {
	f := &liveFacts{kernel: eo.kernel, family: endpoints.FamilyOf(pkt.Dst.Addr()), nodeName: opts.nodeName}
	if f.kernel == nil {
		f.kernel = hostKernel{}
	}
	var err error
	if f.dump, err = f.kernel.Save(ctx, f.family, eo.iptablesBackend); err != nil {
		fmt.Fprintf(stderr, "switchyard: reading the %s rules: %v\n", f.family, err)
		return nil, 1
	}
	f.rules, err = explain.RulesFromSave(rulesetFamily(f.family), f.dump)
	f.whole = err == nil
	if err != nil {
		if f.rules, err = kubeRulesOnly(f.family, f.dump, err, stderr); err != nil {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
			return nil, 1
		}
	}
	var code int
	if f.nodeAddrs, code = liveNodeAddrs(opts, f.kernel, stderr); code != 0 {
		return nil, code
	}
	if f.nodeName == "" {
		f.nodeName, _ = os.Hostname()
	}
	if len(opts.files) > 0 || opts.kubeconfig != "" {
		objs, readErrs := readObjects(ctx, opts)
		for _, err := range readErrs {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
		}
		if objs != nil {
			f.owners = explain.OwnersFromSlices(objs.EndpointSlices)
			f.snap = modelSnapshot(stderr, objs, f.nodeName)
		}
	}
	return f, 0
}

// liveInput reads the node's rules for the packet's family and its addresses (or
// --node-ip). Objects from -f or --kubeconfig, when given, only name the pods and
// nodes behind endpoints and tell the Services' addresses apart.
func liveInput(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.IPTablesInput, int) {
	f, code := readLiveFacts(ctx, opts, eo, pkt, stderr)
	if f == nil {
		return nil, code
	}
	if f.whole {
		eo.fallback = func(cause error) (*ruleset.Ruleset, error) { return kubeRulesOnly(f.family, f.dump, cause, stderr) }
	}
	return &explain.IPTablesInput{Rules: f.rules, NodeAddrs: f.nodeAddrs, NodeName: f.nodeName,
		Owners: f.owners, Snapshot: f.snap, PodInterface: podInterface(opts)}, 0
}

// liveNodeAddrs returns --node-ip, or else the addresses of the node's interfaces.
// On failure it returns the exit code.
func liveNodeAddrs(opts *dryRunOptions, kernel liveKernel, stderr io.Writer) ([]netip.Addr, int) {
	if len(opts.nodeIPs) > 0 {
		addrs, err := parseAddrs("node-ip", opts.nodeIPs)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
			return nil, 2
		}
		return addrs, 0
	}
	addrs, err := kernel.LocalAddrs()
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 1
	}
	return addrs, 0
}

// kubeRulesOnly is the way out when the node's rules include some that switchyard
// cannot parse or trace (a CNI's -m set or -m physdev, say): explain with the proxy's
// own chains alone, saying so on stderr, since other software's rules (and the
// built-in chains' DROP policies they make exceptions to) are then not taken into
// account.
func kubeRulesOnly(family v1.IPFamily, dump []byte, cause error, stderr io.Writer) (*ruleset.Ruleset, error) {
	kept, omitted := explain.KubeRulesOnly(dump)
	rs, err := explain.RulesFromSave(rulesetFamily(family), kept)
	if err != nil {
		return nil, fmt.Errorf("%w (and kube-proxy's rules alone: %w)", cause, err)
	}
	fmt.Fprintf(stderr, "switchyard: %v\n", cause)
	fmt.Fprintf(stderr, "switchyard: explaining with kube-proxy's rules alone: %d rules of other software are left out "+
		"and the built-in chains' policies taken as ACCEPT\n", omitted)
	return rs, nil
}
