package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/explain"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// explainOptions are the flags of `switchyard explain` beyond dry-run's.
type explainOptions struct {
	src, dst, proto, from, output string
	// live reads the kernel's rules even when -f or --kubeconfig is given (then only
	// to name pods and nodes).
	live bool
	// iptablesBackend is the backend whose rules --live reads: auto, nft or legacy.
	iptablesBackend string
	// ipvs are dry-run's IPVS-mode flags, for --mode ipvs offline.
	ipvs *ipvsDryRunOptions

	// kernel reads the live node; nil means the real one (tests put a fake here).
	kernel liveKernel
	// fallback, set by a live read, rebuilds the rules from the proxy's chains alone
	// when the whole dump cannot be traced.
	fallback func(cause error) (*ruleset.Ruleset, error)
}

// registerExplain adds explain's own flags; dry-run's (-f, --kubeconfig, --node,
// --node-ip, --cluster-cidr, ...) are registered by dryRunOptions.register.
func (o *explainOptions) registerExplain(fs *pflag.FlagSet) {
	fs.StringVar(&o.src, "src", "", "the client's `address` (required)")
	fs.StringVar(&o.dst, "dst", "", "the address and port connected to, `IP:PORT` or [IPv6]:PORT (required)")
	fs.StringVar(&o.proto, "proto", "tcp", "tcp, udp or sctp")
	fs.StringVar(&o.from, "from", "pod", "where the packet comes from: pod (a pod on this node), node (a process on the node) or outside")
	fs.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	fs.BoolVar(&o.live, "live", false, "read this node's kernel rules (the default when neither -f nor --kubeconfig is given)")
	fs.StringVar(&o.iptablesBackend, "iptables-backend", "auto", "with --live: the iptables backend to read, auto, nft or legacy")
}

// explainPacket is explain after flag parsing: it builds the packet, reads the rules
// offline (rendered from -f or --kubeconfig, as dry-run does) or live (the kernel's),
// explains and prints.
func explainPacket(ctx context.Context, opts *dryRunOptions, eo *explainOptions, stdout, stderr io.Writer) int {
	pkt, err := eo.packet()
	if err != nil {
		return explainUsage(stderr, err.Error())
	}
	if eo.output != "text" && eo.output != "json" {
		return explainUsage(stderr, fmt.Sprintf("-o %q: want text or json", eo.output))
	}
	var e *explain.Explanation
	var code int
	switch opts.mode {
	case "iptables":
		e, code = explainIPTables(ctx, opts, eo, pkt, stderr)
	case "ipvs":
		e, code = explainIPVS(ctx, opts, eo, pkt, stderr)
	case "nftables":
		e, code = explainNFTables(ctx, opts, eo, pkt, stderr)
	default:
		return explainUsage(stderr, fmt.Sprintf("--mode %q: want iptables, ipvs or nftables", opts.mode))
	}
	if e == nil {
		return code
	}
	if eo.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(e)
	} else {
		err = e.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: writing output: %v\n", err)
		return 1
	}
	return e.ExitCode()
}

// explainIPTables explains pkt with iptables mode's rules, rendered offline or read
// live. On failure it returns nil and the exit code.
func explainIPTables(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.Explanation, int) {
	var in *explain.IPTablesInput
	var code int
	if eo.isLive(opts) {
		in, code = liveInput(ctx, opts, eo, pkt, stderr)
	} else {
		in, code = offlineInput(ctx, opts, pkt, stderr)
	}
	if in == nil {
		return nil, code
	}
	e, err := explain.IPTables(*in, pkt)
	if err != nil && eo.fallback != nil {
		// The live rules parsed but hold a match the tracer cannot follow.
		var rs *ruleset.Ruleset
		if rs, err = eo.fallback(err); err == nil {
			in.Rules = rs
			e, err = explain.IPTables(*in, pkt)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 1
	}
	return e, 0
}

// isLive reports whether explain reads this node's kernel: with --live, or when no
// objects are given to render from.
func (o *explainOptions) isLive(opts *dryRunOptions) bool {
	return o.live || (len(opts.files) == 0 && opts.kubeconfig == "")
}

// explainUsage reports a bad command line as every command does, and returns exit 2.
func explainUsage(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "switchyard: %s\nRun 'switchyard explain --help' for usage.\n", msg)
	return 2
}

// packet checks the packet flags.
func (o *explainOptions) packet() (explain.Packet, error) {
	if o.src == "" || o.dst == "" {
		return explain.Packet{}, fmt.Errorf("explain needs --src IP and --dst IP:PORT")
	}
	src, err := netip.ParseAddr(o.src)
	if err != nil {
		return explain.Packet{}, fmt.Errorf("--src %q: %w", o.src, err)
	}
	dst, err := netip.ParseAddrPort(o.dst)
	if err != nil {
		return explain.Packet{}, fmt.Errorf("--dst %q: want IP:PORT or [IPv6]:PORT: %w", o.dst, err)
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	src = src.Unmap()
	if src.Is4() != dst.Addr().Is4() {
		return explain.Packet{}, fmt.Errorf("--src %s and --dst %s are of different IP families", src, dst)
	}
	proto := strings.ToLower(o.proto)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return explain.Packet{}, fmt.Errorf("--proto %q: want tcp, udp or sctp", o.proto)
	}
	from, err := explain.ParseFrom(o.from)
	if err != nil {
		return explain.Packet{}, fmt.Errorf("--%w", err)
	}
	return explain.Packet{Src: src, Dst: dst, Proto: proto, From: from}, nil
}

// offlineInput renders the rules the daemon would program for the objects, as
// dry-run prints them, with the hook rules it ensures, for the packet's family.
func offlineInput(ctx context.Context, opts *dryRunOptions, pkt explain.Packet, stderr io.Writer) (*explain.IPTablesInput, int) {
	rin, code := loadRenderInput(ctx, opts, stderr)
	if rin == nil {
		return nil, code
	}
	family := endpoints.FamilyOf(pkt.Dst.Addr())
	for _, cfg := range rin.configs {
		if cfg.Family != family {
			continue
		}
		plan := iptables.Render(rin.snap, cfg, nil)
		rs, err := explain.RulesFromPayload(rulesetFamily(family), iptables.Hooks(cfg), plan.Payload)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard: the rendered %s rules do not load: %v\n", family, err)
			return nil, 1
		}
		return &explain.IPTablesInput{
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

// podInterface is the interface a pod's packet arrives on, as far as the rules can
// tell: the bridge, or a name with the pods' prefix, when local traffic is detected
// by interface; otherwise it does not matter.
func podInterface(opts *dryRunOptions) string {
	mode, _ := node.ParseLocalMode(opts.detectLocalMode)
	switch mode {
	case node.LocalModeBridgeInterface:
		return opts.bridgeInterface
	case node.LocalModeInterfaceNamePrefix:
		return opts.interfaceNamePrefix + "0"
	}
	return ""
}

func rulesetFamily(family v1.IPFamily) ruleset.Family {
	if family == v1.IPv6Protocol {
		return ruleset.IPv6
	}
	return ruleset.IPv4
}
