package nftables

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
)

// nlattr encodes one netlink attribute as the kernel does.
func nlattr(t *testing.T, typ uint16, payload []byte) []byte {
	t.Helper()
	b, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: typ, Data: payload}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verdictAttrs(t *testing.T, code int32, chain string) []byte {
	t.Helper()
	c := make([]byte, 4)
	binary.BigEndian.PutUint32(c, uint32(code))
	b := nlattr(t, nftaVerdictCode, c)
	if chain != "" {
		b = append(b, nlattr(t, nftaVerdictChain, append([]byte(chain), 0))...)
	}
	return b
}

// TestDecodeKey pins the element keys the netlink reads return against what nft
// prints (test/nftkernel TestProxierInTheKernel compares the two on a real kernel).
// mutation-checked: dropping the padding of a concatenation's components to 4 bytes
// (`registers := size`) fails every concatenation case.
func TestDecodeKey(t *testing.T) {
	v4, v6 := containerKeys("ipv4_addr"), containerKeys("ipv6_addr")
	for _, tc := range []struct {
		name       string
		components []string
		key        []byte
		want       []string
		wantErr    bool
	}{
		{"cluster-ips", v4[setClusterIPs], []byte{172, 30, 0, 10}, []string{"172.30.0.10"}, false},
		{"service-ips", v4[mapServiceIPs], []byte{172, 30, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0}, []string{"172.30.0.10", "tcp", "80"}, false},
		{"service-ips v6 sctp", v6[mapServiceIPs], append([]byte{0xfd, 0, 0, 0x30, 15: 1}, 132, 0, 0, 0, 0x1f, 0x90, 0, 0), []string{"fd00:30::1", "sctp", "8080"}, false},
		{"service-nodeports udp", v4[mapServiceNodePorts], []byte{17, 0, 0, 0, 0x75, 0x30, 0, 0}, []string{"udp", "30000"}, false},
		{"unnamed protocol", v4[mapServiceNodePorts], []byte{47, 0, 0, 0, 0, 1, 0, 0}, []string{"47", "1"}, false},
		{"hairpin", v4[setHairpinConnections], []byte{10, 0, 0, 1, 10, 0, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0}, []string{"10.0.0.1", "10.0.0.1", "tcp", "80"}, false},
		{"too short", v4[mapServiceIPs], []byte{172, 30, 0, 10, 6, 0, 0, 0, 0}, nil, true},
		{"too long", v4[setClusterIPs], []byte{172, 30, 0, 10, 0}, nil, true},
		{"unknown type", []string{"ether_addr"}, []byte{1, 2, 3, 4, 5, 6}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeKey(tc.components, tc.key)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeVerdict pins a vmap element's value as nft prints it.
func TestDecodeVerdict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attrs   []byte
		want    string
		wantErr bool
	}{
		{"goto", verdictAttrs(t, -4, "service-ULMVA6XW-ns/web/tcp/http"), "goto service-ULMVA6XW-ns/web/tcp/http", false},
		{"jump", verdictAttrs(t, -3, "mark-for-masquerade"), "jump mark-for-masquerade", false},
		{"drop", verdictAttrs(t, 0, ""), "drop", false},
		{"accept", verdictAttrs(t, 1, ""), "accept", false},
		{"no code", nlattr(t, nftaVerdictChain, []byte("x\x00")), "", true},
		{"unknown code", verdictAttrs(t, 7, ""), "", true},
		{"truncated", verdictAttrs(t, -4, "abc")[:9], "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeVerdict(tc.attrs)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
