package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/rulediff"
	"github.com/switchyard-io/switchyard/pkg/sysctl"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// diffDryRunOptions are dry-run's --diff flags.
type diffDryRunOptions struct {
	diff       bool
	configFile string
	backend    string
	// ipvsExcludeCIDRs is --ipvs-exclude-cidrs, parsed after the flags.
	ipvsExcludeCIDRs []netip.Prefix
	ipvsExclude      stringList
}

// registerDiffDryRun adds the --diff flags to dry-run's flag set.
func registerDiffDryRun(fs *pflag.FlagSet) *diffDryRunOptions {
	o := &diffDryRunOptions{}
	fs.BoolVar(&o.diff, "diff", false, "compare with this node's kernel: print what the next full sync would change as a unified diff per table, exit 1 when it would change anything")
	fs.StringVar(&o.configFile, "config", "", "render with the settings of the daemon's KubeProxyConfiguration `FILE` (flags given explicitly win)")
	fs.Var(&o.ipvsExclude, "ipvs-exclude-cidrs", "with --mode ipvs --diff: `CIDRs` whose virtual servers and addresses are not Switchyard's, as the daemon's flag")
	fs.StringVar(&o.backend, "iptables-backend", "auto", "with --diff: the iptables `backend` to read, nft, legacy or auto (the one holding KUBE- chains, as the daemon decides)")
	return o
}

// Exit codes of dry-run --diff, so that it can serve as a monitoring probe.
const (
	diffInSync    = 0
	diffOutOfSync = 1
	diffError     = 2
)

// dryRunDiff is `switchyard dry-run --diff`: it renders the full sync the daemon would
// run on this node, applies it to a copy of the kernel's rules (read with
// iptables-save, never written), and prints, per family and table, a unified diff of
// the rules Switchyard owns from the kernel's to the synced ones. Nothing is printed
// when the kernel is in sync. explicit reports whether a flag was given on the
// command line, so that it wins over the --config file.
func dryRunDiff(ctx context.Context, opts *dryRunOptions, ipvsOpts *ipvsDryRunOptions, diffOpts *diffDryRunOptions,
	explicit func(flag string) bool, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return diffError
	}
	if code := applyConfigFlag(opts, ipvsOpts, diffOpts, explicit, stderr); code != 0 {
		return code
	}
	backend, err := diffSettings(ctx, opts, diffOpts, explicit)
	if err != nil {
		return fail(err)
	}
	snap, configs, err := diffSnapshot(ctx, opts, stderr)
	if err != nil {
		return fail(err)
	}
	if opts.mode == "ipvs" {
		return dryRunDiffIPVS(ctx, ipvsOpts, diffOpts, backend, configs, snap, stdout, stderr)
	}
	status := diffInSync
	for _, cfg := range configs {
		ipt, err := xtables.NewExec(cfg.Family, backend, 5*time.Second)
		if err != nil {
			return fail(err)
		}
		diffs, err := diffFamily(ctx, ipt, cfg, snap)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", cfg.Family, err))
		}
		if status, err = writeDiffs(stdout, diffs, status); err != nil {
			return fail(fmt.Errorf("writing output: %w", err))
		}
	}
	return status
}

// diffSettings checks the flags and completes them from the node as the daemon would
// see it: the iptables backend (auto: the one holding KUBE- chains), whether
// nf_conntrack_tcp_be_liberal is set (no INVALID drop) and whether nfacct counters
// can exist, each unless given explicitly. It only reads the kernel.
func diffSettings(ctx context.Context, opts *dryRunOptions, diffOpts *diffDryRunOptions, explicit func(flag string) bool) (xtables.Backend, error) {
	if diffOpts.ipvsExcludeCIDRs == nil {
		cidrs, err := parsePrefixes("ipvs-exclude-cidrs", diffOpts.ipvsExclude)
		if err != nil {
			return "", err
		}
		diffOpts.ipvsExcludeCIDRs = cidrs
	}
	if opts.mode != "iptables" && opts.mode != "ipvs" {
		return "", fmt.Errorf("--mode %q: want iptables or ipvs", opts.mode)
	}
	if len(opts.files) == 0 && opts.kubeconfig == "" {
		return "", errors.New("dry-run --diff needs --kubeconfig (or -f FILE_OR_DIR)")
	}
	backend, err := xtables.ParseBackend(diffOpts.backend)
	if err != nil {
		return "", err
	}
	if backend == "" {
		report, err := xtables.DetectBackend(ctx)
		if err != nil {
			return "", fmt.Errorf("choosing the iptables backend: %w", err)
		}
		backend = report.Chosen
	}
	if !explicit("conntrack-tcp-be-liberal") {
		// The daemon leaves out the INVALID drop where the sysctl is set, whatever
		// set it (conntrack.tcpBeLiberal or the node's own configuration).
		if v, err := sysctl.Proc.Get(conntrack.SysctlTCPBeLiberal); err == nil && v != 0 {
			opts.tcpBeLiberal = true
		}
	}
	if !explicit("nfacct") && opts.mode == "iptables" {
		// The daemon counts with nfacct where the kernel has it: it creates the
		// counters before each full sync.
		_, err := nfacct.Probe()
		opts.nfacct = err == nil
	}
	return backend, nil
}

// diffSnapshot reads the Services, EndpointSlices and Nodes and returns the snapshot
// and per-family configs the daemon would render from. Problems with single objects
// are reported on stderr and do not stop the others.
func diffSnapshot(ctx context.Context, opts *dryRunOptions, stderr io.Writer) (*endpoints.Snapshot, []*iptables.Config, error) {
	objs, readErrs := readObjects(ctx, opts)
	for _, err := range readErrs {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
	}
	if objs == nil {
		return nil, nil, errors.New("no Services or EndpointSlices could be read")
	}
	if opts.nodeName == "" {
		name, err := daemonNodeName(objs.Nodes)
		if err != nil {
			return nil, nil, err
		}
		opts.nodeName = name
	}
	facts, err := dryRunNode(opts, objs.Nodes)
	if err != nil {
		return nil, nil, err
	}
	configs, err := iptablesConfigs(opts, facts)
	if err != nil {
		return nil, nil, err
	}
	tracker := endpoints.NewTracker(facts.Name)
	for _, svc := range objs.Services {
		reportModelError(stderr, objs.source(svc), tracker.OnServiceUpdate(svc))
	}
	for _, slice := range objs.EndpointSlices {
		reportModelError(stderr, objs.source(slice), tracker.OnEndpointSliceUpdate(slice))
	}
	return tracker.Snapshot(), configs, nil
}

// writeDiffs prints the non-empty diffs and returns diffOutOfSync if there was one,
// else status.
func writeDiffs(stdout io.Writer, diffs []rulediff.TableDiff, status int) (int, error) {
	for _, d := range diffs {
		if d.Diff == "" {
			continue
		}
		status = diffOutOfSync
		if _, err := io.WriteString(stdout, d.Diff); err != nil {
			return diffError, err
		}
	}
	return status, nil
}

// applyConfigFlag applies --config, if given, and prints the file's warnings; it
// returns a non-zero exit code when the file cannot be used.
func applyConfigFlag(opts *dryRunOptions, ipvsOpts *ipvsDryRunOptions, diffOpts *diffDryRunOptions, explicit func(flag string) bool, stderr io.Writer) int {
	if diffOpts.configFile == "" {
		return 0
	}
	warnings, err := applyConfigFile(opts, ipvsOpts, diffOpts, diffOpts.configFile, explicit)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return diffError
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "switchyard: config file %s: %s\n", diffOpts.configFile, w)
	}
	return 0
}

// tableSaver reads one table as iptables-save prints it: xtables.Exec, or the fake in
// tests.
type tableSaver interface {
	SaveTable(ctx context.Context, table xtables.Table) ([]byte, error)
}

// diffTables are the tables a full sync writes to: the canary alone lives in mangle.
var diffTables = []xtables.Table{xtables.TableFilter, xtables.TableNAT, xtables.TableMangle}

// diffFamily reads one family's tables and compares them with what a full sync for
// snap would leave, as the Proxier's full sync does it: the hooks and canaries first,
// then the payload rendered with the kernel's nat chains (so that stale ones go).
func diffFamily(ctx context.Context, ipt tableSaver, cfg *iptables.Config, snap *endpoints.Snapshot) ([]rulediff.TableDiff, error) {
	render := func(natChains []string) []byte { return iptables.Render(snap, cfg, natChains).Payload }
	return compareRules(ctx, ipt, cfg.Family, render, iptables.Hooks(cfg), iptables.SharedChains())
}

// compareRules reads one family's tables and compares them with what a full sync
// leaves: hooks and canaries ensured, then the payload render returns for the
// kernel's nat chain names restored with --noflush. shared names the chains partial
// syncs edit in place (see rulediff.Input).
func compareRules(ctx context.Context, ipt tableSaver, family v1.IPFamily, render func(natChains []string) []byte,
	hooks []xtables.Hook, shared []string) ([]rulediff.TableDiff, error) {
	var kernel, nat []byte
	for _, table := range diffTables {
		saved, err := ipt.SaveTable(ctx, table)
		if err != nil {
			return nil, fmt.Errorf("reading the %s table: %w", table, err)
		}
		if table == xtables.TableNAT {
			nat = saved
		}
		kernel = append(kernel, saved...)
	}
	natState := rulediff.NewState(rulesetFamily(family))
	if err := natState.Apply(nat); err != nil {
		return nil, fmt.Errorf("reading the nat table: %w", err)
	}
	var canaries []string
	for _, table := range xtables.CanaryTables() {
		canaries = append(canaries, string(table)+"/"+string(xtables.ChainCanary))
	}
	return rulediff.Compare(rulediff.Input{
		Family:       rulesetFamily(family),
		Kernel:       kernel,
		Payload:      render(natState.ChainNames("nat")),
		Hooks:        hooks,
		EnsureChains: canaries,
		Owned:        iptables.IsOwnedChain,
		Shared:       shared,
	})
}

// daemonNodeName is the node the daemon on this host programs for when no --node is
// given: the only Node read, else this host's name as kubelet registers it.
func daemonNodeName(nodes []*v1.Node) (string, error) {
	if len(nodes) == 1 {
		return nodes[0].Name, nil
	}
	name, err := hostName()
	if err != nil {
		return "", errors.Join(errors.New("no --node given and several Nodes read"), err)
	}
	return name, nil
}

// hostName is this host's name, lowercased as kubelet registers it (and as the daemon
// takes it without --hostname-override).
func hostName() (string, error) {
	name, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("reading the host name: %w", err)
	}
	return strings.ToLower(name), nil
}
