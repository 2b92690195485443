//go:build linux

package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetlinkIPSets is IPSets over the kernel's ipset netlink protocol
// (github.com/vishvananda/netlink), so that no sync spawns the ipset program: a change
// that touches a set costs a few netlink round trips instead of a process. It reads
// the same `ipset restore` language the Proxier writes, applying it line by line and
// stopping at the first failing line, as `ipset restore` does.
type NetlinkIPSets struct {
	// mu serialises requests: a namespace-bound socket carries a sequence number.
	mu sync.Mutex
	h  *netlink.Handle
	// sock is the socket for the requests the library cannot build (bitmap:port
	// members); nil opens one per request in the current namespace.
	sock *nl.SocketHandle
	// revisions caches the newest revision of each set type the kernel has, by
	// "type/family".
	revisions map[string]uint8
}

var _ IPSets = &NetlinkIPSets{}

// NewNetlinkIPSets returns NetlinkIPSets in the current network namespace.
func NewNetlinkIPSets() *NetlinkIPSets { return &NetlinkIPSets{h: &netlink.Handle{}} }

// NewNetlinkIPSetsAt returns NetlinkIPSets bound to another network namespace, for
// tests that program a namespace they created. Close releases its sockets.
func NewNetlinkIPSetsAt(ns netns.NsHandle) (*NetlinkIPSets, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	cur, err := netns.Get()
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("current netns: %w", err)
	}
	defer cur.Close()
	sock, err := nl.GetNetlinkSocketAt(ns, cur, unix.NETLINK_NETFILTER)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return &NetlinkIPSets{h: h, sock: &nl.SocketHandle{Socket: sock}}, nil
}

// Close releases the sockets of NewNetlinkIPSetsAt.
func (s *NetlinkIPSets) Close() {
	s.h.Close()
	if s.sock != nil {
		s.sock.Close()
	}
}

// Restore implements IPSets.
func (s *NetlinkIPSets) Restore(ctx context.Context, payload []byte) error {
	cmds, err := parseIPSetRestore(payload)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cmds {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.apply(c); err != nil {
			return fmt.Errorf("ipset restore: line %d %q: %w", c.line, c.text, err)
		}
	}
	return nil
}

func (s *NetlinkIPSets) apply(c ipsetCommand) error {
	switch c.op {
	case "create":
		spec, err := parseCreate(c.args)
		if err != nil {
			return err
		}
		opts := netlink.IpsetCreateOptions{Replace: c.exist, MaxElements: spec.maxElem, PortFrom: spec.portFrom, PortTo: spec.portTo}
		if spec.typ != BitmapPort {
			opts.Family = unix.AF_INET
			if spec.inet6 {
				opts.Family = unix.AF_INET6
			}
		}
		// The library would create the oldest revision it knows; the ipset
		// program creates the newest the kernel has, and so does this, so that a
		// set reads the same (e.g. bucketsize) whichever of kube-proxy or
		// Switchyard created it.
		if opts.Revision, err = s.newestRevision(string(spec.typ), opts.Family); err != nil {
			return err
		}
		return s.h.IpsetCreate(c.set, string(spec.typ), opts)
	case "add", "del":
		m, err := parseSetMember(c.args[0])
		if err != nil {
			return err
		}
		if !m.IP.IsValid() {
			return s.addDelPort(c.op, c.set, m.Port, c.exist)
		}
		entry := m.entry()
		// Replace leaves NLM_F_EXCL off, which is ipset's -exist: the kernel then
		// ignores adding a present member and deleting an absent one.
		entry.Replace = c.exist
		if c.op == "add" {
			return s.h.IpsetAdd(c.set, entry)
		}
		return s.h.IpsetDel(c.set, entry)
	case "flush":
		return s.h.IpsetFlush(c.set)
	case "swap":
		return s.h.IpsetSwap(c.set, c.args[0])
	case "destroy":
		err := s.h.IpsetDestroy(c.set)
		if c.exist && isNoSet(err) {
			return nil
		}
		return err
	}
	return fmt.Errorf("unknown command %q", c.op)
}

// addDelPort adds or deletes a bitmap:port member. The library always sends a
// protocol with a port, which bitmap:port refuses (IPSET_ERR_PROTOCOL), so this
// request carries the port alone, as the ipset program sends it.
func (s *NetlinkIPSets) addDelPort(op, set string, port uint16, exist bool) error {
	cmd := nl.IPSET_CMD_ADD
	if op == "del" {
		cmd = nl.IPSET_CMD_DEL
	}
	req := s.request(cmd)
	if !exist {
		req.Flags |= unix.NLM_F_EXCL
	}
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(set)))
	data := nl.NewRtAttr(nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_PORT|int(nl.NLA_F_NET_BYTEORDER), binary.BigEndian.AppendUint16(nil, port)))
	data.AddChild(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_LINENO | nl.NLA_F_NET_BYTEORDER, Value: 0})
	req.AddData(data)
	_, err := s.execute(req)
	return err
}

// newestRevision asks the kernel (IPSET_CMD_TYPE) for the newest revision of a set
// type and family it supports.
func (s *NetlinkIPSets) newestRevision(typ string, family uint8) (uint8, error) {
	key := fmt.Sprintf("%s/%d", typ, family)
	if rev, ok := s.revisions[key]; ok {
		return rev, nil
	}
	req := s.request(nl.IPSET_CMD_TYPE)
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_TYPENAME, nl.ZeroTerminated(typ)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_FAMILY, nl.Uint8Attr(family)))
	msgs, err := s.execute(req)
	if err != nil {
		return 0, fmt.Errorf("set type %s: %w", typ, err)
	}
	rev, found := uint8(0), false
	for _, msg := range msgs {
		if len(msg) < nl.SizeofNfgenmsg {
			continue
		}
		for attr := range nl.ParseAttributes(msg[nl.SizeofNfgenmsg:]) {
			if attr.Type == nl.IPSET_ATTR_REVISION && len(attr.Value) == 1 {
				rev, found = attr.Value[0], true
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("set type %s: the kernel named no revision", typ)
	}
	if s.revisions == nil {
		s.revisions = map[string]uint8{}
	}
	s.revisions[key] = rev
	return rev, nil
}

// request starts an ipset request of the kind the library does not build.
func (s *NetlinkIPSets) request(cmd int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(cmd|(unix.NFNL_SUBSYS_IPSET<<8), nl.GetIpsetFlags(cmd))
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	if s.sock != nil {
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: s.sock}
	}
	return req
}

// execute sends a request, turning ipset's private error numbers into
// nl.IPSetError as the library does.
func (s *NetlinkIPSets) execute(req *nl.NetlinkRequest) ([][]byte, error) {
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	var errno syscall.Errno
	if errors.As(err, &errno) && int(errno) >= nl.IPSET_ERR_PRIVATE {
		return nil, nl.IPSetError(uintptr(errno))
	}
	return msgs, err
}

// entry is the member in the library's form.
func (m setMember) entry() *netlink.IPSetEntry {
	e := &netlink.IPSetEntry{}
	if m.IP.IsValid() {
		e.IP = net.IP(m.IP.AsSlice())
	}
	if m.HasPort {
		proto, port := m.Proto, m.Port
		e.Protocol, e.Port = &proto, &port
	}
	if m.IP2.IsValid() {
		e.IP2 = net.IP(m.IP2.AsSlice())
		if m.Bits2 >= 0 {
			e.CIDR2 = uint8(m.Bits2)
		}
	}
	return e
}

// Entries implements IPSets; members print as `ipset save` prints them. The listing
// is parsed here rather than by the library, which logs every attribute it does not
// know (bucketsize, initval) to the standard logger.
func (s *NetlinkIPSets) Entries(_ context.Context, set string) ([]string, error) {
	s.mu.Lock()
	req := s.request(nl.IPSET_CMD_LIST)
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(set)))
	msgs, err := s.execute(req)
	s.mu.Unlock()
	if err != nil {
		if isNoSet(err) {
			return nil, fmt.Errorf("ipset %s: %w", set, ErrNoSet)
		}
		return nil, fmt.Errorf("listing ipset %s: %w", set, err)
	}
	var typ SetType
	var members []setMember
	for _, msg := range msgs {
		if len(msg) < nl.SizeofNfgenmsg {
			continue
		}
		for attr := range nl.ParseAttributes(msg[nl.SizeofNfgenmsg:]) {
			switch attr.Type {
			case nl.IPSET_ATTR_TYPENAME:
				typ = SetType(nl.BytesToString(attr.Value))
			case nl.IPSET_ATTR_ADT | nl.NLA_F_NESTED:
				for data := range nl.ParseAttributes(attr.Value) {
					if data.Type != nl.IPSET_ATTR_DATA|nl.NLA_F_NESTED {
						continue
					}
					m, err := parseListedMember(data.Value)
					if err != nil {
						return nil, fmt.Errorf("ipset %s: %w", set, err)
					}
					members = append(members, m)
				}
			}
		}
	}
	entries := make([]string, 0, len(members))
	for _, m := range members {
		entries = append(entries, m.format(typ))
	}
	return entries, nil
}

// parseListedMember reads one member of a listing: the attributes kube-proxy's set
// types carry (addresses, protocol, port, second address and its prefix length).
func parseListedMember(data []byte) (setMember, error) {
	m := setMember{Bits2: -1, Proto: unix.IPPROTO_TCP}
	for attr := range nl.ParseAttributes(data) {
		switch attr.Type {
		case nl.IPSET_ATTR_IP | nl.NLA_F_NESTED, nl.IPSET_ATTR_IP2 | nl.NLA_F_NESTED:
			for a := range nl.ParseAttributes(attr.Value) {
				ip, ok := netip.AddrFromSlice(a.Value)
				if !ok {
					return m, fmt.Errorf("bad address %v", a.Value)
				}
				if attr.Type == nl.IPSET_ATTR_IP|nl.NLA_F_NESTED {
					m.IP = ip
				} else {
					m.IP2 = ip
				}
			}
		case nl.IPSET_ATTR_PORT | nl.NLA_F_NET_BYTEORDER:
			if len(attr.Value) != 2 {
				return m, fmt.Errorf("bad port %v", attr.Value)
			}
			m.Port, m.HasPort = binary.BigEndian.Uint16(attr.Value), true
		case nl.IPSET_ATTR_PROTO:
			m.Proto = attr.Value[0]
		case nl.IPSET_ATTR_CIDR2:
			m.Bits2 = int(attr.Value[0])
		}
	}
	return m, nil
}

// Destroy implements IPSets; an absent set is not an error.
func (s *NetlinkIPSets) Destroy(_ context.Context, set string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.h.IpsetDestroy(set); err != nil && !isNoSet(err) {
		return fmt.Errorf("destroying ipset %s: %w", set, err)
	}
	return nil
}

// isNoSet reports the kernel's answer for a set that does not exist: ENOENT (ipset's
// private error numbers, which execute turns into nl.IPSetError, start at 4096).
func isNoSet(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && errno == syscall.ENOENT
}
