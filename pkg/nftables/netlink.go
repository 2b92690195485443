package nftables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/userdata"
	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// netlinkKernel is the real Kernel: it writes through the nft binary (knftables) and
// reads over netlink (github.com/google/nftables). The nft binary fetches and parses
// the whole table for any listing (nft 1.0.6): `nft list chain` of one chain took 36 s
// at 10k services × 10 endpoints on a loaded machine, and a full sync's listings 19.3 s
// at 5k × 10 against 0.79 s over netlink (bench/results/2026-12-02-nftables). Writes
// stay with nft, whose parser is kube-proxy's, so that the kernel holds exactly what
// `nft -f` of the same text gives. knftables' own UseNetlink option covers only List,
// and lists anonymous sets as if they were named.
//
// It opens a netlink socket per call, in the network namespace of the calling thread:
// the daemon runs whole in the node's namespace.
type netlinkKernel struct {
	knftables.Interface
	conn  *gnft.Conn
	table *gnft.Table
	// netns is the namespace's fd for the sockets the Kernel opens itself (0: the
	// calling thread's).
	netns int
	// keys are the key types of the shared sets and maps, which decode their elements.
	keys map[string][]string
	// family is the table's IP family, for the batches Run compiles (netlink_write.go).
	family v1.IPFamily
	// lastWriter is how Run wrote the last transaction (WriterNFT, WriterNetlink).
	lastWriter string
}

// Open returns the real nftables of one family's kube-proxy table: written through the
// nft binary (kube-proxy's requirement: nft 1.0.1 or later), read over netlink.
func Open(family v1.IPFamily) (Kernel, error) { return OpenIn(family, nil) }

// OpenIn is Open with the netlink reads in the network namespace netns (nil: the
// calling thread's), which the caller keeps open while it uses the Kernel; the nft
// binary runs wherever PATH's nft runs. Tests use it to read a namespace they created
// without entering it.
func OpenIn(family v1.IPFamily, netns *os.File) (Kernel, error) {
	nft, err := knftables.New(FamilyOf(family), TableName)
	if err != nil {
		return nil, fmt.Errorf("nftables %s: %w", FamilyOf(family), err)
	}
	var opts []gnft.ConnOption
	nsFd := 0
	if netns != nil {
		nsFd = int(netns.Fd())
		opts = append(opts, gnft.WithNetNSFd(nsFd))
	}
	conn, err := gnft.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables %s over netlink: %w", FamilyOf(family), err)
	}
	gfamily := gnft.TableFamilyIPv4
	if family == v1.IPv6Protocol {
		gfamily = gnft.TableFamilyIPv6
	}
	return &netlinkKernel{
		Interface: nft,
		conn:      conn,
		table:     &gnft.Table{Name: TableName, Family: gfamily},
		netns:     nsFd,
		keys:      containerKeys(addrTypeOf(family)),
		family:    family,
	}, nil
}

// errNotFound is what the netlink reads return for a missing table, chain or set.
var errNotFound = syscall.ENOENT

// IsNotFound reports whether err says that the table, or the chain, set or map asked
// for, does not exist: knftables' errors (the nft binary, the Fake) and the netlink
// reads' alike.
func IsNotFound(err error) bool {
	return knftables.IsNotFound(err) || errors.Is(err, errNotFound)
}

// netlinkError turns a google/nftables error into one IsNotFound recognises: it formats
// the kernel's errno with %v, so the errno is found by its text.
func netlinkError(what string, err error) error {
	if errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), syscall.ENOENT.Error()) {
		return fmt.Errorf("%s: %w", what, errNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// List implements Kernel for "chain", "set" and "map" (anonymous sets left out, as nft
// lists them); other types go through nft.
func (k *netlinkKernel) List(ctx context.Context, objectType string) ([]string, error) {
	switch objectType {
	case "chain", "chains":
		return k.listChains()
	case "set", "sets", "map", "maps":
		return k.listSets(strings.HasPrefix(objectType, "map"))
	}
	return k.Interface.List(ctx, objectType)
}

func (k *netlinkKernel) listChains() ([]string, error) {
	if err := k.tableExists(); err != nil {
		return nil, err
	}
	chains, err := k.conn.ListChainsOfTableFamily(k.table.Family)
	if err != nil {
		return nil, netlinkError("listing chains", err)
	}
	var names []string
	for _, c := range chains {
		if c.Table.Name == k.table.Name {
			names = append(names, c.Name)
		}
	}
	return names, nil
}

func (k *netlinkKernel) listSets(maps bool) ([]string, error) {
	sets, err := k.conn.GetSets(k.table)
	if err != nil {
		return nil, netlinkError("listing sets", err)
	}
	var names []string
	for _, s := range sets {
		if !s.Anonymous && s.IsMap == maps {
			names = append(names, s.Name)
		}
	}
	return names, nil
}

// tableExists returns errNotFound when the table is missing: the chain dump is of the
// whole family and cannot tell.
func (k *netlinkKernel) tableExists() error {
	if _, err := k.conn.ListTableOfFamily(k.table.Name, k.table.Family); err != nil {
		return netlinkError("table "+k.table.Name, err)
	}
	return nil
}

// ListRules implements Kernel as knftables does: each rule's chain, handle and comment,
// not its text. The rules of the whole table ("") go through nft.
func (k *netlinkKernel) ListRules(ctx context.Context, chain string) ([]*knftables.Rule, error) {
	if chain == "" {
		return k.Interface.ListRules(ctx, chain)
	}
	rules, err := k.conn.GetRules(k.table, &gnft.Chain{Name: chain, Table: k.table})
	if err != nil {
		return nil, netlinkError("listing the rules of "+chain, err)
	}
	out := make([]*knftables.Rule, 0, len(rules))
	for _, r := range rules {
		rule := &knftables.Rule{Chain: chain, Handle: knftables.PtrTo(int(r.Handle))}
		if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
			rule.Comment = &c
		}
		out = append(out, rule)
	}
	return out, nil
}

// ListElements implements Kernel for the shared sets and maps, whose key types it
// knows; other containers go through nft.
func (k *netlinkKernel) ListElements(ctx context.Context, objectType, name string) ([]*knftables.Element, error) {
	keyType, ok := k.keys[name]
	if !ok {
		return k.Interface.ListElements(ctx, objectType, name)
	}
	elems, err := k.conn.GetSetElements(&gnft.Set{Table: k.table, Name: name})
	if err != nil {
		return nil, netlinkError("listing the elements of "+name, err)
	}
	out := make([]*knftables.Element, 0, len(elems))
	for _, e := range elems {
		key, err := decodeKey(keyType, e.Key)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", objectType, name, err)
		}
		el := &knftables.Element{Key: key}
		if objectType == "map" {
			el.Map = name
			v, err := decodeVerdict(e.Val)
			if err != nil {
				return nil, fmt.Errorf("map %s, key %s: %w", name, strings.Join(key, " . "), err)
			}
			el.Value = []string{v}
		} else {
			el.Set = name
		}
		if e.Comment != "" {
			el.Comment = knftables.PtrTo(e.Comment)
		}
		out = append(out, el)
	}
	return out, nil
}
