//go:build linux

package nfacct

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nfnetlink_acct commands and attributes (include/uapi/linux/netfilter/nfnetlink_acct.h).
const (
	cmdNew      = 0 // NFNL_MSG_ACCT_NEW
	cmdGet      = 1 // NFNL_MSG_ACCT_GET
	attrName    = 1 // NFACCT_NAME
	attrPackets = 2 // NFACCT_PKTS, big-endian u64
	attrBytes   = 3 // NFACCT_BYTES, big-endian u64
)

// Netlink is the Interface over NETLINK_NETFILTER, subsystem NFNL_SUBSYS_ACCT.
type Netlink struct{}

var _ Interface = Netlink{}

// Probe reports whether the kernel has nfnetlink_acct, by reading an object that need
// not exist: "not found" means the subsystem answered (kube-proxy's check in
// nfacct.New). It does not prove xt_nfacct (the iptables match) is available; the
// first restore that uses it would fail and be retried without counters.
func Probe() (Netlink, error) {
	_, err := Netlink{}.Get("switchyard-probe")
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Netlink{}, fmt.Errorf("%w: %w", ErrNotSupported, err)
	}
	return Netlink{}, nil
}

func request(cmd int, flags int, name string) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(cmd|unix.NFNL_SUBSYS_ACCT<<8, flags)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(attrName, nl.ZeroTerminated(name)))
	return req
}

// Ensure implements Interface.
func (n Netlink) Ensure(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if _, err := n.Get(name); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err := request(cmdNew, unix.NLM_F_CREATE|unix.NLM_F_ACK, name).Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil && !errors.Is(err, syscall.EBUSY) { // EBUSY: created meanwhile
		return fmt.Errorf("creating nfacct object %s: %w", name, err)
	}
	return nil
}

// Get implements Interface.
func (Netlink) Get(name string) (Counter, error) {
	if err := CheckName(name); err != nil {
		return Counter{}, err
	}
	msgs, err := request(cmdGet, unix.NLM_F_ACK, name).Execute(unix.NETLINK_NETFILTER, 0)
	if errors.Is(err, syscall.ENOENT) {
		return Counter{}, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Counter{}, fmt.Errorf("reading nfacct object %s: %w", name, err)
	}
	for _, msg := range msgs {
		c, err := decode(msg)
		if err != nil {
			return Counter{}, fmt.Errorf("reading nfacct object %s: %w", name, err)
		}
		if c.Name == name {
			return c, nil
		}
	}
	return Counter{}, fmt.Errorf("%s: %w", name, ErrNotFound)
}

// decode reads a counter from a message body: an nfgenmsg, then attributes.
func decode(msg []byte) (Counter, error) {
	var c Counter
	if len(msg) < nl.SizeofNfgenmsg {
		return c, errors.New("short nfacct message")
	}
	attrs, err := nl.ParseRouteAttr(msg[nl.SizeofNfgenmsg:])
	if err != nil {
		return c, err
	}
	seen := 0
	for _, a := range attrs {
		switch a.Attr.Type & nl.NLA_TYPE_MASK {
		case attrName:
			c.Name = string(trimNUL(a.Value))
			seen++
		case attrPackets:
			if len(a.Value) != 8 {
				return c, errors.New("bad packet count")
			}
			c.Packets = binary.BigEndian.Uint64(a.Value)
			seen++
		case attrBytes:
			if len(a.Value) != 8 {
				return c, errors.New("bad byte count")
			}
			c.Bytes = binary.BigEndian.Uint64(a.Value)
			seen++
		}
	}
	if seen != 3 {
		return c, errors.New("nfacct message lacks name, packets or bytes")
	}
	return c, nil
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
