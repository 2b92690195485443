//go:build linux

// Package conntrack tests the stale UDP flow cleanup against the kernel's real
// conntrack table, in a network namespace each test creates and deletes.
package conntrack

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// IP plan. Node 192.168.0.2 and 192.168.1.2. The UDP service "dns" 172.30.0.10:53 (node port 30053)
// loses endpoint 10.180.0.1:53 and keeps 10.180.0.2:53. The unchanged UDP service
// "other" 172.30.0.11:53 has endpoint 10.180.0.3:53. The bulk of the table is UDP
// flows from clients in 10.1.0.0/16 to 1000 frontends in 172.30.128.0/22 that are
// not in the snapshot, translated to 10.181.0.0/22: a busy node's other traffic.

var (
	nodeIPs   = []netip.Addr{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.1.2")}
	dnsName   = endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "dns"}, Port: "dns", Protocol: v1.ProtocolUDP}
	otherName = endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "other"}, Port: "dns", Protocol: v1.ProtocolUDP}
)

// flow is one entry to insert: the original tuple and the reply's source (the reply's
// destination is the original source).
type flow struct {
	proto            uint8
	src, dst, ep     netip.AddrPort
	stale            bool
	aboutTheFrontend bool // the original destination is one of the changed service's frontends (UDP)
}

// specialFlows are the entries the test is about, each with whether it must go.
func specialFlows() []flow {
	var out []flow
	add := func(n int, proto uint8, dst, ep string, stale, frontend bool) {
		for i := 0; i < n; i++ {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(len(out) >> 8), byte(len(out))}), uint16(20000+len(out)))
			d := netip.MustParseAddrPort(dst)
			e := d
			if ep != "" {
				e = netip.MustParseAddrPort(ep)
			}
			out = append(out, flow{proto: proto, src: src, dst: d, ep: e, stale: stale, aboutTheFrontend: frontend})
		}
	}
	add(64, unix.IPPROTO_UDP, "172.30.0.10:53", "10.180.0.1:53", true, true)      // to the removed endpoint
	add(64, unix.IPPROTO_UDP, "172.30.0.10:53", "10.180.0.2:53", false, true)     // to the kept endpoint
	add(32, unix.IPPROTO_UDP, "192.168.0.2:30053", "10.180.0.1:53", true, true)   // node port, removed endpoint
	add(32, unix.IPPROTO_UDP, "192.168.0.2:30053", "10.180.0.2:53", false, true)  // node port, kept endpoint
	add(8, unix.IPPROTO_UDP, "192.168.1.2:30053", "10.180.0.1:53", true, true)    // node port on the second node address
	add(8, unix.IPPROTO_UDP, "172.30.0.10:53", "", true, true)                    // untranslated, from before the endpoints
	add(8, unix.IPPROTO_TCP, "172.30.0.10:53", "10.180.0.1:53", false, false)     // TCP is never touched
	add(8, unix.IPPROTO_UDP, "172.30.0.10:5353", "10.180.0.1:5353", false, false) // another port of the address
	add(8, unix.IPPROTO_UDP, "192.168.0.2:30054", "10.180.0.1:53", false, false)  // another node port
	add(16, unix.IPPROTO_UDP, "172.30.0.11:53", "10.180.0.9:53", false, false)    // unchanged service: not checked
	return out
}

// bulkFlow is the i-th entry of the busy node's other traffic.
func bulkFlow(i int) flow {
	fe := i % 1000
	return flow{
		proto: unix.IPPROTO_UDP,
		src:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(10000+i>>16)),
		dst:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 30, byte(128 + fe/250), byte(fe%250 + 1)}), 53),
		ep:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 181, byte(fe / 250), byte(fe%250 + 1)}), 53),
	}
}

// snapshots returns the snapshot applied before the change and the one after.
func snapshots() (prev, next *endpoints.Snapshot) {
	make := func(gen uint64, dnsEndpoints ...string) *endpoints.Snapshot {
		s := &endpoints.Snapshot{
			Services: map[endpoints.ServicePortName]*endpoints.ServicePort{
				dnsName:   {Name: dnsName, Port: 53, NodePort: 30053, ClusterIPs: []netip.Addr{netip.MustParseAddr("172.30.0.10")}},
				otherName: {Name: otherName, Port: 53, ClusterIPs: []netip.Addr{netip.MustParseAddr("172.30.0.11")}},
			},
			Endpoints: map[endpoints.ServicePortName][]*endpoints.Endpoint{
				otherName: {{IP: netip.MustParseAddr("10.180.0.3"), Port: 53, Ready: true, Serving: true}},
			},
			Changed:    map[endpoints.ServicePortName]struct{}{dnsName: {}},
			Generation: gen,
		}
		for _, e := range dnsEndpoints {
			a := netip.MustParseAddrPort(e)
			s.Endpoints[dnsName] = append(s.Endpoints[dnsName], &endpoints.Endpoint{IP: a.Addr(), Port: int32(a.Port()), Ready: true, Serving: true})
		}
		return s
	}
	return make(1, "10.180.0.1:53", "10.180.0.2:53"), make(2, "10.180.0.2:53")
}

// Flags for runs in the QEMU guest (test/vm/cmd/vmexec passes arguments, not the
// environment): the same as SWITCHYARD_CONNTRACK_ENTRIES and _BASELINE.
var (
	entriesFlag  = flag.Int("conntrack.entries", 0, "conntrack entries to insert (default: SWITCHYARD_CONNTRACK_ENTRIES, or 20000)")
	baselineFlag = flag.Bool("conntrack.baseline", false, "also run the implementation before the bounded cleanup")
)

// entriesFromEnv is the table size: -conntrack.entries, SWITCHYARD_CONNTRACK_ENTRIES,
// or a CI-sized 20,000.
func entriesFromEnv(t *testing.T) int {
	if *entriesFlag > 0 {
		return *entriesFlag
	}
	s := os.Getenv("SWITCHYARD_CONNTRACK_ENTRIES")
	if s == "" {
		return 20000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < len(specialFlows()) {
		t.Fatalf("SWITCHYARD_CONNTRACK_ENTRIES=%q: want a number ≥ %d", s, len(specialFlows()))
	}
	return n
}

// TestCleanupDeletesExactlyTheStaleEntries fills a namespace's conntrack table, runs
// the cleanup of a one-endpoint change of a UDP service, and checks that exactly the
// stale entries went and every other stayed — with the kernel filtering the dump to
// the service's cluster IP and node port (two dumps, 208 entries read, however large
// the table),
// and again with the fallback of one dump filtered on UDP alone. With
// SWITCHYARD_CONNTRACK_BASELINE=1 it also runs the implementation before the change
// (netlink.ConntrackDeleteFilters over the whole table); both print their time and
// memory (docs/reliability.md, "Conntrack cleanup").
//
// mutation-checked: sending the CTA_FILTER flags without filterFlagProtoDst makes
// Read 224 instead of 208 (the flows to 172.30.0.10:5353 and 192.168.0.2:30054 come
// up) and fails; reading the reply tuple's destination instead of its source in
// parseEntry deletes the kept endpoint's 96 entries and fails. (Dropping the CTA_ID
// from deletes is caught by TestDeleteRoundTrip, not here: nothing recreates an
// entry between the dump and the delete.)
func TestCleanupDeletesExactlyTheStaleEntries(t *testing.T) {
	requireRoot(t)
	n := entriesFromEnv(t)
	ns := newNetns(t)
	special := specialFlows()
	start := time.Now()
	insert(t, ns, n, special)
	t.Logf("inserted %d entries in %v", n, time.Since(start).Round(time.Millisecond))

	prev, next := snapshots()
	filter := conntrack.NewStaleUDP(prev, next, nodeIPs)
	wantStale, wantRead := 0, 0
	for _, f := range special {
		if f.stale {
			wantStale++
		}
		if f.aboutTheFrontend {
			wantRead++
		}
	}

	for _, tc := range []struct {
		name     string
		ct       conntrack.Netlink
		wantRead int
		dumps    int
	}{
		{"filtered by frontend", conntrack.Netlink{NetNS: ns.path}, wantRead, 2},
		{"filtered by protocol", conntrack.Netlink{NetNS: ns.path, MaxFilteredDumps: 1}, n - 8, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res conntrack.Result
			var err error
			u := measure(func() { res, err = tc.ct.DeleteStale(context.Background(), v1.IPv4Protocol, filter) })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d entries, %s: %+v in %v; %s", n, tc.name, res, u.elapsed, u)
			want := conntrack.Result{Deleted: wantStale, Read: tc.wantRead, Dumps: tc.dumps}
			if res != want {
				t.Errorf("DeleteStale = %+v, want %+v", res, want)
			}
			checkLeft(t, ns, n, special)
			// Put the stale entries back for the next case.
			var stale []flow
			for _, f := range special {
				if f.stale {
					stale = append(stale, f)
				}
			}
			create(t, ns, stale)
		})
	}

	if os.Getenv("SWITCHYARD_CONNTRACK_BASELINE") != "" || *baselineFlag {
		t.Run("baseline: whole table through ConntrackDeleteFilters", func(t *testing.T) {
			h, err := netlink.NewHandleAt(ns.handle, unix.NETLINK_NETFILTER)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			var deleted uint
			u := measure(func() {
				deleted, err = h.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, matchFunc(filter.Match))
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d entries, baseline: %d deleted in %v; %s", n, deleted, u.elapsed, u)
			if int(deleted) != wantStale {
				t.Errorf("baseline deleted %d, want %d", deleted, wantStale)
			}
			checkLeft(t, ns, n, special)
		})
	}
}

// matchFunc is the filter of the implementation before the bounded cleanup.
type matchFunc func(conntrack.Flow) bool

func (m matchFunc) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	proto := v1.ProtocolTCP
	if f.Forward.Protocol == unix.IPPROTO_UDP {
		proto = v1.ProtocolUDP
	}
	dst, _ := netip.AddrFromSlice(f.Forward.DstIP)
	src, _ := netip.AddrFromSlice(f.Reverse.SrcIP)
	return m(conntrack.Flow{Protocol: proto, OrigDst: netip.AddrPortFrom(dst.Unmap(), f.Forward.DstPort), ReplySrc: netip.AddrPortFrom(src.Unmap(), f.Reverse.SrcPort)})
}

// checkLeft lists the table and compares it with what must be left: every bulk entry
// and every special entry that is not stale.
func checkLeft(t *testing.T, ns *namespace, n int, special []flow) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns.handle, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, f := range flows {
		left[fmt.Sprintf("%d %s:%d>%s:%d<%s:%d", f.Forward.Protocol, f.Forward.SrcIP, f.Forward.SrcPort, f.Forward.DstIP, f.Forward.DstPort, f.Reverse.SrcIP, f.Reverse.SrcPort)] = true
	}
	key := func(f flow) string {
		return fmt.Sprintf("%d %s>%s<%s", f.proto, f.src, f.dst, f.ep)
	}
	var missing, notDeleted []string
	for _, f := range special {
		if left[key(f)] == f.stale {
			if f.stale {
				notDeleted = append(notDeleted, key(f))
			} else {
				missing = append(missing, key(f))
			}
		}
	}
	bulkLeft := 0
	for i := 0; i < n-len(special); i++ {
		if left[key(bulkFlow(i))] {
			bulkLeft++
		}
	}
	if bulkLeft != n-len(special) {
		t.Errorf("%d of %d bulk entries left", bulkLeft, n-len(special))
	}
	slices.Sort(missing)
	slices.Sort(notDeleted)
	if len(missing) > 0 {
		t.Errorf("%d entries that were not stale are gone, e.g. %s", len(missing), missing[0])
	}
	if len(notDeleted) > 0 {
		t.Errorf("%d stale entries are left, e.g. %s", len(notDeleted), notDeleted[0])
	}
}

// insert fills the namespace's table with the special flows and n minus as many
// bulk flows.
func insert(t *testing.T, ns *namespace, n int, special []flow) {
	t.Helper()
	max, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := strconv.Atoi(strings.TrimSpace(string(max))); m < n && os.Getenv("SWITCHYARD_VM_GUEST") == "1" {
		// In the throwaway QEMU guest (test/vm) the kernel is the test's own: raise
		// the maximum, and the hash size to a quarter of it as kube-proxy does.
		for file, value := range map[string]int{"/proc/sys/net/netfilter/nf_conntrack_max": n + 10000, "/sys/module/nf_conntrack/parameters/hashsize": (n + 10000) / 4} {
			if err := os.WriteFile(file, []byte(strconv.Itoa(value)), 0o644); err != nil {
				t.Fatalf("guest: %v", err)
			}
		}
	} else if m < n {
		// nf_conntrack_max is the host's, read-only in a namespace: this test must
		// not raise it.
		t.Fatalf("%d entries asked, but nf_conntrack_max is %d on this host (read-only in a namespace)", n, m)
	}
	create(t, ns, special)
	bulk := make([]flow, 0, 4096)
	for i := 0; i < n-len(special); i++ {
		bulk = append(bulk, bulkFlow(i))
		if len(bulk) == cap(bulk) {
			create(t, ns, bulk)
			bulk = bulk[:0]
		}
	}
	create(t, ns, bulk)
}

// create inserts flows with vishvananda/netlink's encoder (independent of the one
// under test), each with a 20-minute timeout, many requests per send: under the QEMU
// guest's emulation one request per round trip would take most of an hour at 1M.
func create(t *testing.T, ns *namespace, flows []flow) {
	t.Helper()
	sock, err := nl.GetNetlinkSocketAt(ns.handle, netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	const batch = 256
	for len(flows) > 0 {
		n := min(batch, len(flows))
		var msgs []byte
		for _, f := range flows[:n] {
			msgs = append(msgs, newRequest(f).Serialize()...)
		}
		if err := unix.Sendto(sock.GetFd(), msgs, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			t.Fatalf("sending %d conntrack creates: %v", n, err)
		}
		for acks := 0; acks < n; {
			replies, _, err := sock.Receive()
			if err != nil {
				t.Fatalf("reading conntrack create acknowledgements: %v", err)
			}
			for _, m := range replies {
				if m.Header.Type != unix.NLMSG_ERROR {
					continue
				}
				acks++
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					t.Fatalf("creating a conntrack entry: %v", unix.Errno(-code))
				}
			}
		}
		flows = flows[n:]
	}
}

// newRequest builds the IPCTNL_MSG_CT_NEW request of one flow.
func newRequest(f flow) *nl.NetlinkRequest {
	family := uint8(unix.AF_INET)
	if f.src.Addr().Is6() {
		family = unix.AF_INET6
	}
	req := nl.NewNetlinkRequest(int(netlink.ConntrackTable)<<8|nl.IPCTNL_MSG_CT_NEW, unix.NLM_F_CREATE|unix.NLM_F_ACK)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: family, Version: nl.NFNETLINK_V0})
	req.AddData(tupleAttr(nl.CTA_TUPLE_ORIG, f.proto, f.src, f.dst))
	req.AddData(tupleAttr(nl.CTA_TUPLE_REPLY, f.proto, f.ep, f.src))
	req.AddData(nl.NewRtAttr(nl.CTA_TIMEOUT, nl.BEUint32Attr(1200)))
	if f.proto == unix.IPPROTO_TCP {
		info := nl.NewRtAttr(unix.NLA_F_NESTED|nl.CTA_PROTOINFO, nil)
		tcp := nl.NewRtAttrChild(info, unix.NLA_F_NESTED|nl.CTA_PROTOINFO_TCP, nil)
		nl.NewRtAttrChild(tcp, nl.CTA_PROTOINFO_TCP_STATE, []byte{nl.TCP_CONNTRACK_ESTABLISHED})
		req.AddData(info)
	}
	return req
}

func tupleAttr(typ int, proto uint8, src, dst netip.AddrPort) *nl.RtAttr {
	t := nl.NewRtAttr(unix.NLA_F_NESTED|typ, nil)
	ip := nl.NewRtAttrChild(t, unix.NLA_F_NESTED|nl.CTA_TUPLE_IP, nil)
	srcType, dstType := nl.CTA_IP_V4_SRC, nl.CTA_IP_V4_DST
	if src.Addr().Is6() {
		srcType, dstType = nl.CTA_IP_V6_SRC, nl.CTA_IP_V6_DST
	}
	nl.NewRtAttrChild(ip, srcType, src.Addr().AsSlice())
	nl.NewRtAttrChild(ip, dstType, dst.Addr().AsSlice())
	p := nl.NewRtAttrChild(t, unix.NLA_F_NESTED|nl.CTA_TUPLE_PROTO, nil)
	nl.NewRtAttrChild(p, nl.CTA_PROTO_NUM, []byte{proto})
	nl.NewRtAttrChild(p, nl.CTA_PROTO_SRC_PORT, nl.BEUint16Attr(src.Port()))
	nl.NewRtAttrChild(p, nl.CTA_PROTO_DST_PORT, nl.BEUint16Attr(dst.Port()))
	return t
}

// namespace is a network namespace the test created.
type namespace struct {
	path   string
	handle netns.NsHandle
}

// newNetns creates a network namespace and deletes it when the test ends. Its name
// is not under the testbed's prefix ("sy-"), whose start-up removes namespaces it
// finds without a live lock as leftovers of a killed run.
func newNetns(t *testing.T) *namespace {
	t.Helper()
	name := fmt.Sprintf("swct-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &namespace{path: filepath.Join("/var/run/netns", name)}
	t.Cleanup(func() {
		if ns.handle.IsOpen() {
			ns.handle.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromPath(ns.path)
	if err != nil {
		t.Fatal(err)
	}
	ns.handle = h
	return ns
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and writes its conntrack table (sudo make e2e)")
	}
}

// TestCleanupIPv6 checks an IPv6 cleanup: the kernel filter and the deletes with
// 16-byte addresses, and that the IPv4 table is left alone.
func TestCleanupIPv6(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	var flows []flow
	add := func(n int, src, dst, ep string, stale bool) {
		for i := 0; i < n; i++ {
			s := netip.MustParseAddrPort(src)
			s = netip.AddrPortFrom(s.Addr(), s.Port()+uint16(i))
			flows = append(flows, flow{proto: unix.IPPROTO_UDP, src: s, dst: netip.MustParseAddrPort(dst), ep: netip.MustParseAddrPort(ep), stale: stale})
		}
	}
	add(4, "[fd00:1::1]:40000", "[fd00:30::10]:53", "[fd00:180::1]:53", true)
	add(4, "[fd00:1::1]:41000", "[fd00:30::10]:53", "[fd00:180::2]:53", false)
	add(2, "[fd00:1::1]:42000", "[fd00:30::10]:5353", "[fd00:180::1]:5353", false)
	add(4, "10.1.0.1:40000", "172.30.0.10:53", "10.180.0.1:53", false) // IPv4: another family's cleanup
	create(t, ns, flows)

	v6 := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	mk := func(gen uint64, eps ...string) *endpoints.Snapshot {
		s := &endpoints.Snapshot{
			Services:   map[endpoints.ServicePortName]*endpoints.ServicePort{dnsName: {Name: dnsName, Port: 53, ClusterIPs: append(v6("fd00:30::10"), netip.MustParseAddr("172.30.0.10"))}},
			Endpoints:  map[endpoints.ServicePortName][]*endpoints.Endpoint{},
			Changed:    map[endpoints.ServicePortName]struct{}{dnsName: {}},
			Generation: gen,
		}
		for _, e := range eps {
			a := netip.MustParseAddrPort(e)
			s.Endpoints[dnsName] = append(s.Endpoints[dnsName], &endpoints.Endpoint{IP: a.Addr(), Port: int32(a.Port()), Ready: true, Serving: true})
		}
		return s
	}
	filter := conntrack.NewStaleUDP(mk(1, "[fd00:180::1]:53", "[fd00:180::2]:53"), mk(2, "[fd00:180::2]:53"), nil)
	res, err := conntrack.Netlink{NetNS: ns.path}.DeleteStale(context.Background(), v1.IPv6Protocol, filter)
	if err != nil {
		t.Fatal(err)
	}
	if want := (conntrack.Result{Deleted: 4, Read: 8, Dumps: 1}); res != want {
		t.Errorf("DeleteStale = %+v, want %+v", res, want)
	}
	h, err := netlink.NewHandleAt(ns.handle, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var left []string
	for _, family := range []netlink.InetFamily{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := h.ConntrackTableList(netlink.ConntrackTable, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range list {
			left = append(left, fmt.Sprintf("%s:%d<%s", f.Forward.SrcIP, f.Forward.SrcPort, f.Reverse.SrcIP))
		}
	}
	var want []string
	for _, f := range flows {
		if !f.stale {
			want = append(want, fmt.Sprintf("%s:%d<%s", f.src.Addr(), f.src.Port(), f.ep.Addr()))
		}
	}
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left:\n%s\nwant:\n%s", strings.Join(left, "\n"), strings.Join(want, "\n"))
	}
}
