package xtables

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	goiptables "github.com/coreos/go-iptables/iptables"
	v1 "k8s.io/api/core/v1"
)

// Backend is the iptables implementation a host uses.
type Backend string

// The two iptables backends.
const (
	// BackendNFT is iptables-nft: the iptables command line over nf_tables.
	BackendNFT Backend = "nft"
	// BackendLegacy is iptables-legacy: the x_tables kernel interface.
	BackendLegacy Backend = "legacy"
)

// Exec is the Interface for a real host: iptables-restore and iptables-save run as
// processes, single-rule operations go through github.com/coreos/go-iptables. It must
// run in the network namespace it programs.
type Exec struct {
	family  v1.IPFamily
	backend Backend
	// lockWait bounds the wait for the xtables lock (-w), so that a stuck lock holder
	// turns into a failed sync and red health instead of a hung proxy
	// (kubernetes#57428).
	lockWait time.Duration
	ipt      *goiptables.IPTables
}

// NewExec returns an Exec for one family and backend.
func NewExec(family v1.IPFamily, backend Backend, lockWait time.Duration) (*Exec, error) {
	proto := goiptables.ProtocolIPv4
	if family == v1.IPv6Protocol {
		proto = goiptables.ProtocolIPv6
	}
	seconds := int(lockWait.Seconds())
	if seconds < 1 {
		seconds = 1
	}
	e := &Exec{family: family, backend: backend, lockWait: time.Duration(seconds) * time.Second}
	ipt, err := goiptables.New(goiptables.IPFamily(proto), goiptables.Timeout(seconds), goiptables.Path(e.binary("")))
	if err != nil {
		return nil, fmt.Errorf("%s iptables (%s backend): %w", family, backend, err)
	}
	e.ipt = ipt
	return e, nil
}

// binary returns the name of an iptables program for this family and backend, e.g.
// binary("-restore") is "ip6tables-nft-restore".
func (e *Exec) binary(suffix string) string {
	base := "iptables"
	if e.family == v1.IPv6Protocol {
		base = "ip6tables"
	}
	return base + "-" + string(e.backend) + suffix
}

var _ Interface = &Exec{}

var _ ChainLimiter = &Exec{}

// nftMaxChainsPerRestore bounds the chains one iptables-nft-restore --noflush declares.
// Measured on the 10k services × 10 endpoints ruleset (110k chains), writing every
// service port's chains in restores of at most N chains took: N=16000 127 s, 4000
// 13.5 s, 2000 8.7 s, 1000 6.6 s, 500 6.4 s, 250 6.8 s (below 1000 the cost of starting
// a restore and reading the table's chain list begins to dominate).
const nftMaxChainsPerRestore = 1000

// MaxChainsPerRestore implements ChainLimiter: the nft backend's restores are
// superlinear in the chains they declare; legacy's rewrite the whole table each time,
// so splitting would only multiply that cost.
func (e *Exec) MaxChainsPerRestore() int {
	if e.backend == BackendNFT {
		return nftMaxChainsPerRestore
	}
	return 0
}

// Restore implements Interface. A failure is an *Error naming the payload line
// iptables-restore reported, with the lines around it, and the reason (lock timeout,
// missing chain).
func (e *Exec) Restore(ctx context.Context, payload []byte) error {
	if len(payload) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, e.binary("-restore"), "-w", strconv.Itoa(int(e.lockWait.Seconds())), "--noflush")
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return restoreError(e.binary("-restore"), payload, stderr.String(), err)
	}
	return nil
}

// ChainNames implements Interface by reading iptables-save's chain declarations.
func (e *Exec) ChainNames(ctx context.Context, table Table) ([]string, error) {
	// Scanned, not read whole: a large nat table saves to tens of megabytes.
	var names []string
	err := e.ScanTable(ctx, table, func(line []byte) error {
		names = appendChainName(names, line)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// SaveTable returns iptables-save -t TABLE output for this family and backend. It only
// reads the kernel.
func (e *Exec) SaveTable(ctx context.Context, table Table) ([]byte, error) { return e.save(ctx, table) }

func (e *Exec) save(ctx context.Context, table Table) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.binary("-save"), "-t", string(table))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &Error{Op: e.binary("-save") + " -t " + string(table), Message: strings.TrimSpace(stderr.String()),
			Reason: reasonFromMessage(stderr.String()), Err: err}
	}
	return out, nil
}

// chainNamesFromSave extracts the chain names declared in iptables-save output.
func chainNamesFromSave(out []byte) []string {
	var names []string
	for line := range bytes.Lines(out) {
		names = appendChainName(names, line)
	}
	return names
}

// appendChainName appends the chain a line of iptables-save output declares, if any.
func appendChainName(names []string, line []byte) []string {
	if len(line) > 1 && line[0] == ':' {
		if i := bytes.IndexByte(line, ' '); i > 1 {
			names = append(names, string(line[1:i]))
		}
	}
	return names
}

// ChainExists implements Interface.
func (e *Exec) ChainExists(_ context.Context, table Table, chain Chain) (bool, error) {
	ok, err := e.ipt.ChainExists(string(table), string(chain))
	if err != nil {
		return false, commandError("checking chain", table, chain, err)
	}
	return ok, nil
}

// EnsureChain implements Interface.
func (e *Exec) EnsureChain(ctx context.Context, table Table, chain Chain) error {
	ok, err := e.ChainExists(ctx, table, chain)
	if err != nil || ok {
		return err
	}
	if err := e.ipt.NewChain(string(table), string(chain)); err != nil {
		return commandError("creating chain", table, chain, err)
	}
	return nil
}

// EnsureRule implements Interface.
func (e *Exec) EnsureRule(_ context.Context, table Table, chain Chain, args ...string) error {
	if err := e.ipt.InsertUnique(string(table), string(chain), 1, args...); err != nil {
		return commandError("ensuring rule in", table, chain, err)
	}
	return nil
}

// DeleteRule implements Interface.
func (e *Exec) DeleteRule(_ context.Context, table Table, chain Chain, args ...string) error {
	if err := e.ipt.DeleteIfExists(string(table), string(chain), args...); err != nil {
		return commandError("deleting rule in", table, chain, err)
	}
	return nil
}

// DeleteChain implements Interface.
func (e *Exec) DeleteChain(ctx context.Context, table Table, chain Chain) error {
	ok, err := e.ChainExists(ctx, table, chain)
	if err != nil || !ok {
		return err
	}
	if err := e.ipt.ClearAndDeleteChain(string(table), string(chain)); err != nil {
		return commandError("deleting chain", table, chain, err)
	}
	return nil
}

// SaveAll returns iptables-save output for every table of this family and backend.
func (e *Exec) SaveAll(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.binary("-save"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &Error{Op: e.binary("-save"), Message: strings.TrimSpace(stderr.String()),
			Reason: reasonFromMessage(stderr.String()), Err: err}
	}
	return out, nil
}

// Available reports whether this family's programs exist for this backend.
func (e *Exec) Available() bool {
	_, err := exec.LookPath(e.binary("-restore"))
	return err == nil
}
