//go:build linux

package nfacct

import (
	"encoding/binary"
	"testing"

	"github.com/vishvananda/netlink/nl"
)

// attr encodes one netlink attribute with its padding.
func attr(typ uint16, value []byte) []byte {
	b := make([]byte, 4, 4+len(value)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(value)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, value...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// TestDecode checks the reply format of NFNL_MSG_ACCT_GET: an nfgenmsg, then the
// name (NUL-terminated), packets and bytes (big-endian), in any order, with other
// attributes skipped.
func TestDecode(t *testing.T) {
	msg := make([]byte, nl.SizeofNfgenmsg)
	msg = append(msg, attr(attrPackets, be64(42))...)
	msg = append(msg, attr(attrName, []byte("ct_state_invalid_dropped_pkts\x00"))...)
	msg = append(msg, attr(4, []byte{1, 2, 3, 4})...) // NFACCT_USE, ignored
	msg = append(msg, attr(attrBytes, be64(4200))...)
	got, err := decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counter{Name: "ct_state_invalid_dropped_pkts", Packets: 42, Bytes: 4200}); got != want {
		t.Errorf("decode = %+v, want %+v", got, want)
	}
	if _, err := decode(append(make([]byte, nl.SizeofNfgenmsg), attr(attrName, []byte("x\x00"))...)); err == nil {
		t.Error("a message without counts was accepted")
	}
	if _, err := decode([]byte{1}); err == nil {
		t.Error("a short message was accepted")
	}
}
