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
	k := explain.IPVSKernel{IPVS: handle, Links: ipvs.NewLinks(), IPSets: ipvs.ExecIPSets{}}
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

// liveInput reads the node's rules for the packet's family and its addresses (or
// --node-ip). Objects from -f or --kubeconfig, when given, only name the pods and
// nodes behind endpoints and tell the Services' addresses apart.
func liveInput(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.IPTablesInput, int) {
	kernel := eo.kernel
	if kernel == nil {
		kernel = hostKernel{}
	}
	family := endpoints.FamilyOf(pkt.Dst.Addr())
	dump, err := kernel.Save(ctx, family, eo.iptablesBackend)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: reading the %s rules: %v\n", family, err)
		return nil, 1
	}
	rs, err := explain.RulesFromSave(rulesetFamily(family), dump)
	if err != nil {
		if rs, err = kubeRulesOnly(family, dump, err, stderr); err != nil {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
			return nil, 1
		}
	} else {
		eo.fallback = func(cause error) (*ruleset.Ruleset, error) { return kubeRulesOnly(family, dump, cause, stderr) }
	}
	in := &explain.IPTablesInput{Rules: rs, PodInterface: podInterface(opts), NodeName: opts.nodeName}
	var code int
	if in.NodeAddrs, code = liveNodeAddrs(opts, kernel, stderr); code != 0 {
		return nil, code
	}
	if in.NodeName == "" {
		in.NodeName, _ = os.Hostname()
	}
	if len(opts.files) > 0 || opts.kubeconfig != "" {
		objs, readErrs := readObjects(ctx, opts)
		for _, err := range readErrs {
			fmt.Fprintf(stderr, "switchyard: %v\n", err)
		}
		if objs != nil {
			in.Owners = explain.OwnersFromSlices(objs.EndpointSlices)
			in.Snapshot = modelSnapshot(stderr, objs, in.NodeName)
		}
	}
	return in, 0
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
