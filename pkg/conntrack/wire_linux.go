//go:build linux

package conntrack

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// The conntrack netlink wire format (linux/netfilter/nfnetlink_conntrack.h), written
// and read here directly so that a dump is parsed in place, without allocating per
// entry, and a delete carries exactly the attributes the kernel needs.
const (
	nfnlSubsysCTNetlink = 1 // NFNL_SUBSYS_CTNETLINK
	ctMsgGet            = 1 // IPCTNL_MSG_CT_GET
	ctMsgDelete         = 2 // IPCTNL_MSG_CT_DELETE

	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaID         = 12
	ctaZone       = 18
	ctaFilter     = 25

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3

	ctaFilterOrigFlags  = 1
	ctaFilterReplyFlags = 2

	// CTA_FILTER flags (net/netfilter/nf_conntrack_netlink.c): which fields of
	// the CTA_TUPLE_ORIG sent with a dump request an entry must equal.
	filterFlagIPDst     = 1 << 1
	filterFlagProtoNum  = 1 << 3
	filterFlagProtoDst  = 1 << 5
	nlaFlagNested       = 1 << 15
	nlaTypeMask         = 0x3fff
	nlmsgHeaderLen      = unix.SizeofNlMsghdr
	nfgenHeaderLen      = 4
	nlmsgErrorHeaderLen = 4
)

// entry is what the cleanup needs of one conntrack entry.
type entry struct {
	proto    uint8
	origSrc  netip.AddrPort
	origDst  netip.AddrPort
	replySrc netip.AddrPort
	zone     uint16
	id       uint32
	hasID    bool
}

func (e entry) flow() Flow {
	var proto v1.Protocol
	switch e.proto {
	case unix.IPPROTO_UDP:
		proto = v1.ProtocolUDP
	case unix.IPPROTO_TCP:
		proto = v1.ProtocolTCP
	case unix.IPPROTO_SCTP:
		proto = v1.ProtocolSCTP
	}
	return Flow{Protocol: proto, OrigDst: e.origDst, ReplySrc: e.replySrc}
}

// dumpRequest builds a conntrack dump request for family, filtered by the kernel on
// proto and on the original destination's address and port where dump has them.
func dumpRequest(family, proto uint8, dump Dump) []byte {
	b := appendHeader(nil, ctMsgGet, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, 0, family)
	orig := beginNested(&b, ctaTupleOrig)
	flags := uint32(filterFlagProtoNum)
	// IPv6 dumps are filtered on the port alone: the kernel's IPv6 address filter
	// matched no entry at all here (Linux 6.18, TestCleanupIPv6 in test/conntrack),
	// and a filter that drops entries it should pass would leave stale ones.
	if dump.Addr.IsValid() && family == unix.AF_INET {
		ip := beginNested(&b, ctaTupleIP)
		a := dump.Addr.Unmap().As4()
		b = appendAttr(b, ctaIPv4Dst, a[:])
		endNested(b, ip)
		flags |= filterFlagIPDst
	}
	p := beginNested(&b, ctaTupleProto)
	b = appendAttr(b, ctaProtoNum, []byte{proto})
	if dump.Port != 0 {
		b = appendAttr(b, ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, dump.Port))
		flags |= filterFlagProtoDst
	}
	endNested(b, p)
	endNested(b, orig)
	f := beginNested(&b, ctaFilter)
	b = appendAttr(b, ctaFilterOrigFlags, binary.NativeEndian.AppendUint32(nil, flags))
	b = appendAttr(b, ctaFilterReplyFlags, binary.NativeEndian.AppendUint32(nil, 0))
	endNested(b, f)
	return finishMessage(b, 0)
}

// appendDelete appends a request deleting exactly e: its original tuple, its zone and
// its ID (the kernel refuses with ENOENT if the entry with that tuple has another ID).
func appendDelete(b []byte, family uint8, seq uint32, e entry) []byte {
	start := len(b)
	b = appendHeader(b, ctMsgDelete, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, family)
	orig := beginNested(&b, ctaTupleOrig)
	ip := beginNested(&b, ctaTupleIP)
	if family == unix.AF_INET6 {
		s, d := e.origSrc.Addr().As16(), e.origDst.Addr().As16()
		b = appendAttr(b, ctaIPv6Src, s[:])
		b = appendAttr(b, ctaIPv6Dst, d[:])
	} else {
		s, d := e.origSrc.Addr().Unmap().As4(), e.origDst.Addr().Unmap().As4()
		b = appendAttr(b, ctaIPv4Src, s[:])
		b = appendAttr(b, ctaIPv4Dst, d[:])
	}
	endNested(b, ip)
	p := beginNested(&b, ctaTupleProto)
	b = appendAttr(b, ctaProtoNum, []byte{e.proto})
	b = appendAttr(b, ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, e.origSrc.Port()))
	b = appendAttr(b, ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, e.origDst.Port()))
	endNested(b, p)
	endNested(b, orig)
	if e.zone != 0 {
		b = appendAttr(b, ctaZone, binary.BigEndian.AppendUint16(nil, e.zone))
	}
	if e.hasID {
		b = appendAttr(b, ctaID, binary.BigEndian.AppendUint32(nil, e.id))
	}
	return finishMessage(b, start)
}

// appendHeader appends a netlink header (its length patched by finishMessage) and the
// nfgenmsg header.
func appendHeader(b []byte, msg uint16, flags uint16, seq uint32, family uint8) []byte {
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, nfnlSubsysCTNetlink<<8|msg)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	return append(b, family, unix.NFNETLINK_V0, 0, 0)
}

func finishMessage(b []byte, start int) []byte {
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func setSeq(msg []byte, seq uint32) { binary.NativeEndian.PutUint32(msg[8:], seq) }

func appendAttr(b []byte, typ uint16, val []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func beginNested(b *[]byte, typ uint16) int {
	start := len(*b)
	*b = binary.NativeEndian.AppendUint16(*b, 0)
	*b = binary.NativeEndian.AppendUint16(*b, typ|nlaFlagNested)
	return start
}

func endNested(b []byte, start int) {
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
}

var errShortMessage = errors.New("short netlink message")

// nextMessage splits the first netlink message off buf.
func nextMessage(buf []byte) (hdr unix.NlMsghdr, body, rest []byte, err error) {
	if len(buf) < nlmsgHeaderLen {
		return hdr, nil, nil, errShortMessage
	}
	hdr.Len = binary.NativeEndian.Uint32(buf)
	hdr.Type = binary.NativeEndian.Uint16(buf[4:])
	hdr.Flags = binary.NativeEndian.Uint16(buf[6:])
	hdr.Seq = binary.NativeEndian.Uint32(buf[8:])
	hdr.Pid = binary.NativeEndian.Uint32(buf[12:])
	if hdr.Len < nlmsgHeaderLen || int(hdr.Len) > len(buf) {
		return hdr, nil, nil, errShortMessage
	}
	next := (int(hdr.Len) + 3) &^ 3
	if next > len(buf) {
		next = len(buf)
	}
	return hdr, buf[nlmsgHeaderLen:hdr.Len], buf[next:], nil
}

// ackErrno reads the error of an NLMSG_ERROR message (0 for an acknowledgement).
func ackErrno(body []byte) unix.Errno {
	if len(body) < nlmsgErrorHeaderLen {
		return unix.EBADMSG
	}
	code := int32(binary.NativeEndian.Uint32(body))
	if code < 0 {
		return unix.Errno(-code)
	}
	return 0
}

// forEachAttr calls fn with each attribute's type (flags masked off) and value.
func forEachAttr(b []byte, fn func(typ uint16, val []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[4:l])
		next := (l + 3) &^ 3
		if next > len(b) {
			return
		}
		b = b[next:]
	}
}

// parseEntry reads a conntrack message body (after the netlink header).
func parseEntry(body []byte) (entry, bool) {
	var e entry
	if len(body) < nfgenHeaderLen {
		return e, false
	}
	ok := false
	forEachAttr(body[nfgenHeaderLen:], func(typ uint16, val []byte) {
		switch typ {
		case ctaTupleOrig:
			e.origSrc, e.origDst, e.proto = parseTuple(val)
			ok = e.origDst.IsValid()
		case ctaTupleReply:
			e.replySrc, _, _ = parseTuple(val)
		case ctaZone:
			if len(val) >= 2 {
				e.zone = binary.BigEndian.Uint16(val)
			}
		case ctaID:
			if len(val) >= 4 {
				e.id, e.hasID = binary.BigEndian.Uint32(val), true
			}
		}
	})
	return e, ok
}

// parseTuple reads a CTA_TUPLE_ORIG or CTA_TUPLE_REPLY.
func parseTuple(b []byte) (src, dst netip.AddrPort, proto uint8) {
	var srcIP, dstIP netip.Addr
	var srcPort, dstPort uint16
	forEachAttr(b, func(typ uint16, val []byte) {
		switch typ {
		case ctaTupleIP:
			forEachAttr(val, func(typ uint16, val []byte) {
				switch typ {
				case ctaIPv4Src, ctaIPv6Src:
					srcIP, _ = netip.AddrFromSlice(val)
				case ctaIPv4Dst, ctaIPv6Dst:
					dstIP, _ = netip.AddrFromSlice(val)
				}
			})
		case ctaTupleProto:
			forEachAttr(val, func(typ uint16, val []byte) {
				switch {
				case typ == ctaProtoNum && len(val) >= 1:
					proto = val[0]
				case typ == ctaProtoSrcPort && len(val) >= 2:
					srcPort = binary.BigEndian.Uint16(val)
				case typ == ctaProtoDstPort && len(val) >= 2:
					dstPort = binary.BigEndian.Uint16(val)
				}
			})
		}
	})
	if srcIP.IsValid() {
		src = netip.AddrPortFrom(srcIP, srcPort)
	}
	if dstIP.IsValid() {
		dst = netip.AddrPortFrom(dstIP, dstPort)
	}
	return src, dst, proto
}
