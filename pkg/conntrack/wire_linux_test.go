//go:build linux

package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// kernelTuple builds a CTA_TUPLE_* attribute as the kernel sends it, with
// vishvananda/netlink's encoder (independent of the one under test).
func kernelTuple(typ int, proto uint8, src, dst netip.AddrPort) *nl.RtAttr {
	t := nl.NewRtAttr(unix.NLA_F_NESTED|typ, nil)
	ip := nl.NewRtAttrChild(t, unix.NLA_F_NESTED|ctaTupleIP, nil)
	srcType, dstType := ctaIPv4Src, ctaIPv4Dst
	if src.Addr().Is6() {
		srcType, dstType = ctaIPv6Src, ctaIPv6Dst
	}
	nl.NewRtAttrChild(ip, srcType, src.Addr().AsSlice())
	nl.NewRtAttrChild(ip, dstType, dst.Addr().AsSlice())
	p := nl.NewRtAttrChild(t, unix.NLA_F_NESTED|ctaTupleProto, nil)
	nl.NewRtAttrChild(p, ctaProtoNum, []byte{proto})
	nl.NewRtAttrChild(p, ctaProtoSrcPort, nl.BEUint16Attr(src.Port()))
	nl.NewRtAttrChild(p, ctaProtoDstPort, nl.BEUint16Attr(dst.Port()))
	return t
}

// kernelEntry builds the body of a conntrack dump message (after the netlink header).
func kernelEntry(family uint8, attrs ...*nl.RtAttr) []byte {
	body := []byte{family, 0, 0, 0}
	for _, a := range attrs {
		body = append(body, a.Serialize()...)
	}
	return body
}

func TestParseEntry(t *testing.T) {
	ap := netip.MustParseAddrPort
	status := nl.NewRtAttr(3, nl.BEUint32Attr(0x18e)) // CTA_STATUS, skipped
	protoinfo := nl.NewRtAttr(unix.NLA_F_NESTED|4, nil)
	nl.NewRtAttrChild(protoinfo, 1, []byte{1, 2, 3}) // an odd length: padding must be honoured
	tests := []struct {
		name string
		body []byte
		want entry
	}{
		{
			name: "IPv4 DNATed UDP entry in zone 7",
			body: kernelEntry(unix.AF_INET,
				kernelTuple(ctaTupleOrig, unix.IPPROTO_UDP, ap("10.1.0.1:40000"), ap("172.30.0.10:53")),
				kernelTuple(ctaTupleReply, unix.IPPROTO_UDP, ap("10.180.0.1:53"), ap("10.1.0.1:40000")),
				status, protoinfo,
				nl.NewRtAttr(ctaZone, nl.BEUint16Attr(7)),
				nl.NewRtAttr(ctaID, nl.BEUint32Attr(0xdeadbeef))),
			want: entry{proto: unix.IPPROTO_UDP, origSrc: ap("10.1.0.1:40000"), origDst: ap("172.30.0.10:53"), replySrc: ap("10.180.0.1:53"), zone: 7, id: 0xdeadbeef, hasID: true},
		},
		{
			name: "IPv6 entry without ID",
			body: kernelEntry(unix.AF_INET6,
				protoinfo,
				kernelTuple(ctaTupleOrig, unix.IPPROTO_UDP, ap("[fd00::1]:40000"), ap("[fd00:30::10]:53")),
				kernelTuple(ctaTupleReply, unix.IPPROTO_UDP, ap("[fd00:180::1]:53"), ap("[fd00::1]:40000"))),
			want: entry{proto: unix.IPPROTO_UDP, origSrc: ap("[fd00::1]:40000"), origDst: ap("[fd00:30::10]:53"), replySrc: ap("[fd00:180::1]:53")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseEntry(tt.body)
			if !ok {
				t.Fatal("parseEntry: not ok")
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(entry{}), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("parseEntry (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeleteRoundTrip checks that a delete request carries the entry's original
// tuple, zone and ID, by parsing it back: the kernel deletes by exactly these.
// mutation-checked: leaving CTA_ID out of appendDelete fails this.
func TestDeleteRoundTrip(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, e := range []entry{
		{proto: unix.IPPROTO_UDP, origSrc: ap("10.1.0.1:40000"), origDst: ap("172.30.0.10:53"), zone: 7, id: 42, hasID: true},
		{proto: unix.IPPROTO_UDP, origSrc: ap("[fd00::1]:40000"), origDst: ap("[fd00:30::10]:53"), id: 1, hasID: true},
	} {
		family := uint8(unix.AF_INET)
		if e.origDst.Addr().Is6() {
			family = unix.AF_INET6
		}
		msgs := appendDelete(nil, family, 9, e)
		msgs = appendDelete(msgs, family, 10, e) // a batch: two messages back to back
		for seq := uint32(9); seq <= 10; seq++ {
			hdr, body, rest, err := nextMessage(msgs)
			if err != nil {
				t.Fatal(err)
			}
			msgs = rest
			if hdr.Type != nfnlSubsysCTNetlink<<8|ctMsgDelete || hdr.Flags != unix.NLM_F_REQUEST|unix.NLM_F_ACK || hdr.Seq != seq {
				t.Errorf("header %+v", hdr)
			}
			got, ok := parseEntry(body)
			if !ok || body[0] != family {
				t.Fatalf("parseEntry of the delete request: ok=%v, family %d", ok, body[0])
			}
			if diff := cmp.Diff(e, got, cmp.AllowUnexported(entry{}), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("delete request (-want +got):\n%s", diff)
			}
		}
		if len(msgs) != 0 {
			t.Errorf("%d bytes left after two messages", len(msgs))
		}
	}
}

// TestDumpRequestFilter checks the kernel filter a dump asks for: the protocol, and
// for a frontend its address and port (CTA_FILTER's flags say which fields count).
// mutation-checked: dropping filterFlagProtoDst fails this (and the privileged test
// reads flows to the frontend's other ports).
func TestDumpRequestFilter(t *testing.T) {
	tests := []struct {
		name      string
		family    uint8
		dump      Dump
		wantFlags uint32
		wantDst   netip.AddrPort
	}{
		{"frontend", unix.AF_INET, Dump{netip.MustParseAddr("172.30.0.10"), 53}, filterFlagProtoNum | filterFlagIPDst | filterFlagProtoDst, netip.MustParseAddrPort("172.30.0.10:53")},
		{"IPv6 frontend: port only", unix.AF_INET6, Dump{netip.MustParseAddr("fd00:30::10"), 53}, filterFlagProtoNum | filterFlagProtoDst, netip.AddrPort{}},
		{"node port", unix.AF_INET, Dump{Port: 30053}, filterFlagProtoNum | filterFlagProtoDst, netip.AddrPort{}},
		{"protocol only", unix.AF_INET, Dump{}, filterFlagProtoNum, netip.AddrPort{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, body, _, err := nextMessage(dumpRequest(tt.family, unix.IPPROTO_UDP, tt.dump))
			if err != nil {
				t.Fatal(err)
			}
			if hdr.Type != nfnlSubsysCTNetlink<<8|ctMsgGet || hdr.Flags != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || body[0] != tt.family {
				t.Errorf("header %+v, family %d", hdr, body[0])
			}
			var flags, replyFlags uint32 = 0, 1
			var proto uint8
			var dst netip.AddrPort
			forEachAttr(body[nfgenHeaderLen:], func(typ uint16, val []byte) {
				switch typ {
				case ctaTupleOrig:
					_, dst, proto = parseTuple(val)
				case ctaFilter:
					forEachAttr(val, func(typ uint16, val []byte) {
						switch typ {
						case ctaFilterOrigFlags:
							flags = binary.NativeEndian.Uint32(val)
						case ctaFilterReplyFlags:
							replyFlags = binary.NativeEndian.Uint32(val)
						}
					})
				}
			})
			if flags != tt.wantFlags || replyFlags != 0 || proto != unix.IPPROTO_UDP || dst != tt.wantDst {
				t.Errorf("filter flags %#x (want %#x), reply flags %#x, proto %d, dst %v (want %v)", flags, tt.wantFlags, replyFlags, proto, dst, tt.wantDst)
			}
		})
	}
}

func TestAckErrno(t *testing.T) {
	ack := func(code int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(code)) }
	for _, tc := range []struct {
		body []byte
		want unix.Errno
	}{
		{ack(0), 0},
		{ack(-int32(unix.ENOENT)), unix.ENOENT},
		{nil, unix.EBADMSG},
	} {
		if got := ackErrno(tc.body); got != tc.want {
			t.Errorf("ackErrno(%v) = %v, want %v", tc.body, got, tc.want)
		}
	}
}
