package ipvs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// TestSetMemberRoundTrip parses each member form the Proxier writes and prints it
// back as `ipset save` would; the privileged TestNetlinkIPSetsMatchTheIPSetProgram
// checks the same forms against the kernel and the ipset program.
// mutation-checked: treating a bare third address as a /0 network (Bits2 0) fails
// "ip,port,ip"; printing a host network with its /32 fails "ip,port,net host".
func TestSetMemberRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		typ      SetType
		want     setMember
	}{
		{"ip", "10.96.0.1", HashIP, setMember{IP: netip.MustParseAddr("10.96.0.1"), Bits2: -1}},
		{"ipv6", "fd00::1", HashIP, setMember{IP: netip.MustParseAddr("fd00::1"), Bits2: -1}},
		{"ip,port", "10.96.0.10,udp:53", HashIPPort, setMember{IP: netip.MustParseAddr("10.96.0.10"), Proto: 17, Port: 53, HasPort: true, Bits2: -1}},
		{"ip,port sctp", "2001:db8::1,sctp:30001", HashIPPort, setMember{IP: netip.MustParseAddr("2001:db8::1"), Proto: 132, Port: 30001, HasPort: true, Bits2: -1}},
		{"ip,port,ip", "10.0.0.5,tcp:8080,10.0.0.5", HashIPPortIP, setMember{IP: netip.MustParseAddr("10.0.0.5"), Proto: 6, Port: 8080, HasPort: true, IP2: netip.MustParseAddr("10.0.0.5"), Bits2: -1}},
		{"ip,port,net", "192.0.2.9,tcp:443,198.51.100.0/24", HashIPPortNet, setMember{IP: netip.MustParseAddr("192.0.2.9"), Proto: 6, Port: 443, HasPort: true, IP2: netip.MustParseAddr("198.51.100.0"), Bits2: 24}},
		{"ip,port,net host", "192.0.2.9,tcp:443,198.51.100.7", HashIPPortNet, setMember{IP: netip.MustParseAddr("192.0.2.9"), Proto: 6, Port: 443, HasPort: true, IP2: netip.MustParseAddr("198.51.100.7"), Bits2: -1}},
		{"port", "30080", BitmapPort, setMember{Proto: 6, Port: 30080, HasPort: true, Bits2: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSetMember(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Fatalf("parse (-want +got):\n%s", diff)
			}
			if out := got.format(tc.typ); out != tc.in {
				t.Fatalf("format = %q, want %q", out, tc.in)
			}
			// A listing carries the host's prefix length; it prints bare too.
			if tc.typ == HashIPPortNet && got.Bits2 < 0 {
				got.Bits2 = got.IP2.BitLen()
				if out := got.format(tc.typ); out != tc.in {
					t.Fatalf("format with /%d = %q, want %q", got.Bits2, out, tc.in)
				}
			}
		})
	}
}

// TestSetMemberRejects names each malformed member rather than guessing.
func TestSetMemberRejects(t *testing.T) {
	for _, in := range []string{"", "10.0.0.1,icmp:1", "10.0.0.1,tcp:70000", "10.0.0.1,tcp:80,fd00::/64", "10.0.0.1,tcp:80,10.0.0.0/0", "fe80::1%eth0", "10.0.0.1,tcp:80,10.0.0.1,x", "nonsense"} {
		if m, err := parseSetMember(in); err == nil {
			t.Errorf("parseSetMember(%q) = %+v, want an error", in, m)
		}
	}
}

// TestParseIPSetRestoreReadsTheProxiersPayloads parses every line the Proxier writes
// (a full restore with swaps, and a delta) and checks the commands and -exist.
func TestParseIPSetRestoreReadsTheProxiersPayloads(t *testing.T) {
	full := Sets{SetClusterIP: {"10.96.0.1,tcp:443"}, SetNodePortTCP: {"30080"}}.RestoreFull(v1.IPv4Protocol)
	cmds, err := parseIPSetRestore(full)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, c := range cmds {
		ops[c.op]++
		if c.op == "create" {
			if _, err := parseCreate(c.args); err != nil {
				t.Errorf("line %d %q: %v", c.line, c.text, err)
			}
		}
		if c.op == "add" {
			if _, err := parseSetMember(c.args[0]); err != nil {
				t.Errorf("line %d %q: %v", c.line, c.text, err)
			}
		}
	}
	n := len(SetSpecs)
	if diff := cmp.Diff(map[string]int{"create": 2 * n, "add": 2, "swap": n, "destroy": n}, ops); diff != "" {
		t.Fatalf("commands (-want +got):\n%s", diff)
	}
	delta := setDelta{del: map[string][]string{SetClusterIP: {"10.96.0.1,tcp:443"}}, add: map[string][]string{SetNodePortTCP: {"30081"}}}.restore(v1.IPv4Protocol)
	cmds, err = parseIPSetRestore(delta)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmds {
		got = append(got, c.op+" "+c.set+" "+strings.Join(c.args, " ")+map[bool]string{true: " exist"}[c.exist])
	}
	if diff := cmp.Diff([]string{"del KUBE-CLUSTER-IP 10.96.0.1,tcp:443 exist", "add KUBE-NODE-PORT-TCP 30081 exist"}, got); diff != "" {
		t.Fatalf("delta (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"frobnicate X", "add X", "add X a b", "swap X", "create " + strings.Repeat("N", 32) + " hash:ip"} {
		if _, err := parseIPSetRestore([]byte(bad + "\n")); err == nil {
			t.Errorf("parseIPSetRestore(%q): no error", bad)
		}
	}
	for _, bad := range [][]string{{"hash:mac"}, {"bitmap:port"}, {"bitmap:port", "family", "inet"}, {"hash:ip", "range", "0-1"}, {"hash:ip", "maxelem"}} {
		if _, err := parseCreate(bad); err == nil {
			t.Errorf("parseCreate(%q): no error", bad)
		}
	}
}
