package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// KernelRule is one rule as a whole-table dump reads it: its handle, and a digest of
// its expressions as the kernel holds them (the bytes nft compiled, an anonymous set's
// name among them; stateful expressions by name only). Two reads of a rule nobody
// rewrote give the same digest, whatever traffic passed.
type KernelRule struct {
	Handle uint64
	Digest uint64
	// Tag is the RuleTag the netlink writer left in the rule's user data (0: the rule
	// was written by nft, or by anyone else).
	Tag uint64
}

// RuleDumper is a Kernel that reads every rule of the table in one dump: the periodic
// check's reader (check.go). The netlink Kernel is one; knftables' Interface is not, and
// a Proxier over it keeps its periodic full sync.
type RuleDumper interface {
	DumpRules(ctx context.Context) (map[string][]KernelRule, error)
}

var _ RuleDumper = &netlinkKernel{}

// dumpBufferSize is the receive buffer of a dump: the kernel fills one datagram per
// read (a page or a few), so this is far above what it sends.
const dumpBufferSize = 1 << 20

// DumpRules implements RuleDumper with one NFT_MSG_GETRULE dump of the table, read a
// datagram at a time: at 10k services × 10 endpoints the table holds about 230k rules,
// and google/nftables' GetRules asks per chain (110k requests) while netlink.Conn's
// Receive would hold the whole reply in memory at once.
func (k *netlinkKernel) DumpRules(ctx context.Context) (map[string][]KernelRule, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, dumpTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: []byte(k.table.Name + "\x00")}})
	if err != nil {
		return nil, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{byte(k.table.Family), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	if _, err := conn.Send(req); err != nil {
		return nil, fmt.Errorf("requesting the rules of table %s: %w", k.table.Name, err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	d := ruleDump{chains: map[string][]KernelRule{}}
	buf := make([]byte, dumpBufferSize)
	for !d.done {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var n int
		var recvErr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, recvErr = unix.Recvfrom(int(fd), buf, 0)
			return !errors.Is(recvErr, unix.EAGAIN)
		}); err != nil {
			return nil, fmt.Errorf("reading the rules of table %s: %w", k.table.Name, err)
		}
		if recvErr != nil {
			return nil, fmt.Errorf("reading the rules of table %s: %w", k.table.Name, recvErr)
		}
		if err := d.add(buf[:n]); err != nil {
			return nil, fmt.Errorf("table %s: %w", k.table.Name, err)
		}
	}
	return d.chains, nil
}

// ruleDump collects the messages of a GETRULE dump.
type ruleDump struct {
	chains map[string][]KernelRule
	done   bool
}

// Netlink attribute types of nftables rules and expressions (nf_tables.h).
const (
	nftaRuleChain      = 2
	nftaRuleHandle     = 3
	nftaRuleExpression = 4
	nftaRuleUserdata   = 7
	nftaExprName       = 1
	nftaExprData       = 2
)

// statefulExpressions are the expressions whose data the kernel updates as packets
// pass (an anonymous counter's packets and bytes, a quota's usage, a limit's tokens):
// their names count in a digest, their data does not, or traffic alone would look
// like drift.
var statefulExpressions = map[string]bool{"counter": true, "quota": true, "limit": true, "last": true}

// digestExpressions hashes a rule's expression list (NFTA_RULE_EXPRESSIONS: one nested
// NFTA_LIST_ELEM per expression, each with its name and data).
func digestExpressions(b []byte) (uint64, error) {
	h := fnv.New64a()
	list, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, err
	}
	for list.Next() {
		expr, err := netlink.NewAttributeDecoder(list.Bytes())
		if err != nil {
			return 0, err
		}
		var name string
		var data []byte
		for expr.Next() {
			switch expr.Type() {
			case nftaExprName:
				name = expr.String()
			case nftaExprData:
				data = expr.Bytes()
			}
		}
		if err := expr.Err(); err != nil {
			return 0, err
		}
		_, _ = h.Write([]byte(name))
		_, _ = h.Write([]byte{0})
		if !statefulExpressions[name] {
			_, _ = h.Write(data)
		}
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64(), list.Err()
}

// add parses one datagram of netlink messages (headers in host order).
func (d *ruleDump) add(b []byte) error {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return fmt.Errorf("netlink messages: %w", err)
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_DONE:
			d.done = true
			return nil
		case unix.NLMSG_ERROR:
			if len(m.Data) < 4 {
				return errors.New("truncated netlink error")
			}
			if errno := -int32(binary.NativeEndian.Uint32(m.Data[0:4])); errno != 0 {
				err := unix.Errno(errno)
				if err == unix.ENOENT {
					return fmt.Errorf("dumping rules: %w", errNotFound)
				}
				return fmt.Errorf("dumping rules: %w", err)
			}
		case unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE:
			if err := d.rule(m.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

// rule reads one rule message: the nfgenmsg header, then its attributes.
func (d *ruleDump) rule(payload []byte) error {
	if len(payload) < 4 {
		return errors.New("truncated rule message")
	}
	ad, err := netlink.NewAttributeDecoder(payload[4:])
	if err != nil {
		return fmt.Errorf("rule message: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	var chain string
	var r KernelRule
	for ad.Next() {
		switch ad.Type() {
		case nftaRuleChain:
			chain = ad.String()
		case nftaRuleHandle:
			r.Handle = ad.Uint64()
		case nftaRuleExpression:
			if r.Digest, err = digestExpressions(ad.Bytes()); err != nil {
				return fmt.Errorf("rule in %s: %w", chain, err)
			}
		case nftaRuleUserdata:
			r.Tag = ruleTagOf(ad.Bytes())
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rule message: %w", err)
	}
	d.chains[chain] = append(d.chains[chain], r)
	return nil
}

// dumpTimeout bounds a dump: a reader stuck on a socket must not hold the periodic
// check forever (the caller's deadline applies when it is earlier).
const dumpTimeout = 2 * time.Minute
