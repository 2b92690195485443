package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/explain"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// nftTableLister is how `explain --mode nftables --live` reads the node's table; the
// host's liveKernel has it, tests put a fake in explainOptions.kernel.
type nftTableLister interface {
	// ListNFTable returns `nft list table FAMILY kube-proxy` for the IP family.
	ListNFTable(ctx context.Context, family v1.IPFamily) ([]byte, error)
}

// ListNFTable runs `nft list table ip|ip6 kube-proxy`, read-only (it needs
// CAP_NET_ADMIN, nothing more). nftmodel parses its output.
func (hostKernel) ListNFTable(ctx context.Context, family v1.IPFamily) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nft", "list", "table", nftFamily(family), nftables.TableName)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nft list table %s %s: %w: %s", nftFamily(family), nftables.TableName, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func nftFamily(family v1.IPFamily) string {
	if family == v1.IPv6Protocol {
		return "ip6"
	}
	return "ip"
}

// liveNFTablesInput reads the packet's family's kube-proxy table from the node (only
// that table: other software's tables are not traced) and the node's addresses (or
// --node-ip). Objects from -f or --kubeconfig, when given, name the Services, pods and
// nodes. On failure it returns nil and the exit code.
func liveNFTablesInput(ctx context.Context, opts *dryRunOptions, eo *explainOptions, pkt explain.Packet, stderr io.Writer) (*explain.NFTablesInput, int) {
	kernel := eo.kernel
	if kernel == nil {
		kernel = hostKernel{}
	}
	lister, ok := kernel.(nftTableLister)
	if !ok {
		fmt.Fprintln(stderr, "switchyard: this kernel cannot list nftables tables")
		return nil, 1
	}
	family := endpoints.FamilyOf(pkt.Dst.Addr())
	text, err := lister.ListNFTable(ctx, family)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: reading the %s table: %v\n", family, err)
		return nil, 1
	}
	rs, err := nftmodel.Parse(string(text))
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: the node's %s table cannot be traced: %v\n", family, err)
		return nil, 1
	}
	addrs, code := liveNodeAddrs(opts, kernel, stderr)
	if code != 0 {
		return nil, code
	}
	in := &explain.NFTablesInput{Rules: rs, NodeAddrs: addrs, NodeName: opts.nodeName, PodInterface: podInterface(opts)}
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
