package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// NFTTable is the table kube-proxy's nftables mode (and Switchyard's, which keeps its
// layout) programs IPv4 Services into: `table ip kube-proxy`.
const NFTTable = "kube-proxy"

// nftChainBase is the base of an nftables-mode chain name: the first 8 characters of
// the base32 SHA-256 of name, a dash, then name ("ULMVA6XW-ns1/svc1/tcp/p80"). These
// names are short enough never to be truncated (kube-proxy truncates above 240
// characters), so the benchmark does not truncate either.
func nftChainBase(name string) string {
	sum := sha256.Sum256([]byte(name))
	return base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
}

// NFTServiceChain is the service- chain of benchmark Service i in nftables mode.
func NFTServiceChain(i int) string {
	return "service-" + nftChainBase(fmt.Sprintf("%s/%s/tcp/%s", Namespace, ServiceName(i), PortName))
}

// NFTEndpointChain is the endpoint- chain of Service i's endpoint at address.
func NFTEndpointChain(i int, address string) string {
	return "endpoint-" + nftChainBase(fmt.Sprintf("%s/%s/tcp/%s__%s/%d", Namespace, ServiceName(i), PortName, address, TargetPort))
}

// NFTables runs the nft program in a network namespace, against the IPv4 kube-proxy
// table.
type NFTables struct {
	Netns string
}

func (n NFTables) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Netns, "nft"}, args...)...)
}

func (n NFTables) output(ctx context.Context, args ...string) (string, bool, error) {
	cmd := n.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// nft says "No such file or directory" for a missing table, chain or map.
		if strings.Contains(stderr.String(), "No such file or directory") {
			return "", false, nil
		}
		return "", false, fmt.Errorf("nft %s in %s: %w: %s", strings.Join(args, " "), n.Netns, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), true, nil
}

// ListChain returns `nft list chain ip kube-proxy CHAIN`, or ok=false when the table or
// chain is missing.
func (n NFTables) ListChain(ctx context.Context, chain string) (string, bool, error) {
	return n.output(ctx, "list", "chain", "ip", NFTTable, chain)
}

// ListChains returns `nft list chains ip`: every chain's name, no rules.
func (n NFTables) ListChains(ctx context.Context) (string, error) {
	out, _, err := n.output(ctx, "list", "chains", "ip")
	return out, err
}

// ListTable returns `nft list table ip kube-proxy`, a ruleset `nft -f` loads back.
func (n NFTables) ListTable(ctx context.Context) ([]byte, error) {
	out, ok, err := n.output(ctx, "list", "table", "ip", NFTTable)
	if err == nil && !ok {
		err = fmt.Errorf("nft list table ip %s in %s: no such table", NFTTable, n.Netns)
	}
	return []byte(out), err
}

// FlushChain empties one chain of the kube-proxy table (the benchmark's way of making
// a proxy's restart sync visible: only a full sync puts the rules back).
func (n NFTables) FlushChain(ctx context.Context, chain string) error {
	_, _, err := n.output(ctx, "flush", "chain", "ip", NFTTable, chain)
	return err
}

// Load feeds payload to `nft -f -` as one transaction and returns how long it took.
func (n NFTables) Load(ctx context.Context, payload []byte) (time.Duration, error) {
	cmd := n.command(ctx, "-f", "-")
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return elapsed, fmt.Errorf("nft -f in %s: %w: %s", n.Netns, err, firstLines(stderr.String(), 5))
	}
	return elapsed, nil
}

func firstLines(text string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(text), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// OneServiceTransaction is the nft transaction that rewrites one service chain from
// its `nft list chain` output: flush it, then add its rules back (the listing's
// "table ip kube-proxy { chain NAME { ... } }" block adds rules to an existing chain),
// as a proxy's partial sync of one endpoint change does.
func OneServiceTransaction(chain, listing string) []byte {
	return []byte(fmt.Sprintf("flush chain ip %s %s\n%s", NFTTable, chain, listing))
}
