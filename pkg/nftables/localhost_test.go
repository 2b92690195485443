package nftables

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// Ways a packet to a loopback node port ends, as traceLocal prints them.
const (
	servedLocally = "ACCEPT p=1.0000 local"
	rejectedTCP   = "REJECT p=1.0000 local by localhost-nodeport-reject-tcp"
	rejectedUDP   = "REJECT p=1.0000 local by localhost-nodeport-reject-udp"
	rejectedSCTP  = "REJECT p=1.0000 local by localhost-nodeport-reject-sctp"
)

// Configurations of localhost node ports (LocalhostNodePortRejects).
func gateOff(*Config) {}

func gateOn(c *Config) { c.LocalhostNodePortRejects = LocalhostNodePortRejects(true, false) }

// gateOnExplicitLoopback is --nodeport-addresses with 127.0.0.0/8 (or "localhost")
// and the gate on: kube-proxy serves TCP with its userspace proxy and rejects the rest.
func gateOnExplicitLoopback(c *Config) {
	c.NodePortIPs = append(c.NodePortIPs, netip.MustParseAddr("127.0.0.1"))
	c.NodePortsOnLoopback = true
	c.LocalhostNodePortRejects = LocalhostNodePortRejects(true, true)
}

func v6GateOn(c *Config) { toV6(c); gateOn(c) }

// TestLocalhostNodePorts traces a connection from a process on the node to a node
// port on a loopback address through the rendered table, with nftmodel, in every
// configuration kube-proxy v1.37.2's nftables mode has for it. The packet leaves
// through output (no DNAT: services matches node ports only on non-loopback
// addresses), loops back through lo and meets filter-input's
// nodeport-endpoints-check: with the gate off nothing there matches loopback, and the
// packet reaches whatever listens on the node's loopback (nothing is proxied); with it
// on, `ip daddr 127.0.0.0/8 meta l4proto . th dport vmap
// @localhost-nodeport-reject-ports` sends it to the per-protocol chain that counts
// and rejects it.
//
// mutation-checked: leaving the nodeport-endpoints-check rule out of
// writeLocalhostRejects fails "gate on, tcp"; leaving the map element out of
// renderService fails "gate on, udp" and the IPv6 cases; writing the element for
// every protocol in explicit-loopback mode fails "gate on with explicit loopback, tcp
// is not rejected"; matching "ip daddr 127.0.0.1" instead of 127.0.0.0/8 fails
// "gate on, another loopback address".
func TestLocalhostNodePorts(t *testing.T) {
	lb := lbService()
	both := makeSlice("ns", "lb", "lb-1", 8080, ep{IP: "10.180.0.2", Node: testNode}, ep{IP: "10.180.1.2", Node: otherNode})
	dns := makeService("ns", "dns", "172.30.0.53", func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort, s.Spec.Ports[0].Protocol = v1.ServiceTypeNodePort, 30053, v1.ProtocolUDP
	})
	dnsSlice := udpSlice(makeSlice("ns", "dns", "dns-1", 53, ep{IP: "10.180.1.53", Node: otherNode}))
	sctp := makeService("ns", "s", "172.30.0.54", func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort, s.Spec.Ports[0].Protocol = v1.ServiceTypeNodePort, 30054, v1.ProtocolSCTP
	})
	sctpEPs := sctpSlice(makeSlice("ns", "s", "s-1", 9, ep{IP: "10.180.1.54", Node: otherNode}))
	v6 := makeService("ns", "web", "fd00:30::10", func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeNodePort, 30002
	})
	v6EPs := v6Slice(makeSlice("ns", "web", "web-1", 8080, ep{IP: "fd00:11::1", Node: otherNode}))
	tests := []struct {
		name    string
		cfg     func(*Config)
		objects []any
		proto   string
		dst     string
		want    []string
	}{
		{name: "gate off, --nodeport-addresses", cfg: gateOff, objects: []any{lb, both}, dst: "127.0.0.1:30001", want: []string{servedLocally}},
		{name: "gate off, every address", cfg: func(c *Config) { allNodePorts(c) }, objects: []any{lb, both}, dst: "127.0.0.1:30001", want: []string{servedLocally}},
		{name: "gate off, loopback in --nodeport-addresses", cfg: func(c *Config) {
			c.NodePortIPs = append(c.NodePortIPs, netip.MustParseAddr("127.0.0.1"))
		}, objects: []any{lb, both}, dst: "127.0.0.1:30001", want: []string{servedLocally}},
		{name: "gate on, tcp", cfg: gateOn, objects: []any{lb, both}, dst: "127.0.0.1:30001", want: []string{rejectedTCP}},
		{name: "gate on, every address", cfg: func(c *Config) { allNodePorts(c); gateOn(c) }, objects: []any{lb, both}, dst: "127.0.0.1:30001", want: []string{rejectedTCP}},
		{name: "gate on, another loopback address", cfg: gateOn, objects: []any{lb, both}, dst: "127.0.0.5:30001", want: []string{rejectedTCP}},
		{name: "gate on, udp", cfg: gateOn, objects: []any{dns, dnsSlice}, proto: "udp", dst: "127.0.0.1:30053", want: []string{rejectedUDP}},
		{name: "gate on, sctp", cfg: gateOn, objects: []any{sctp, sctpEPs}, proto: "sctp", dst: "127.0.0.1:30054", want: []string{rejectedSCTP}},
		{name: "gate on, no endpoints: still the localhost reject", cfg: gateOn, objects: []any{lb}, dst: "127.0.0.1:30001", want: []string{rejectedTCP}},
		{name: "gate on, a port that is no node port", cfg: gateOn, objects: []any{lb, both}, dst: "127.0.0.1:30002", want: []string{servedLocally}},
		{name: "gate on, udp to a tcp node port", cfg: gateOn, objects: []any{lb, both}, proto: "udp", dst: "127.0.0.1:30001", want: []string{servedLocally}},
		{name: "gate on, the node address is still served", cfg: gateOn, objects: []any{lb, both}, dst: testNodeIP + ":30001",
			want: []string{half + "10.180.0.2:8080 masquerade", half + "10.180.1.2:8080 masquerade"}},
		{name: "gate on with explicit loopback, tcp is not rejected", cfg: gateOnExplicitLoopback, objects: []any{lb, both}, dst: "127.0.0.1:30001", want: []string{servedLocally}},
		{name: "gate on with explicit loopback, udp is rejected", cfg: gateOnExplicitLoopback, objects: []any{dns, dnsSlice}, proto: "udp", dst: "127.0.0.1:30053", want: []string{rejectedUDP}},
		{name: "IPv6, gate off", cfg: toV6, objects: []any{v6, v6EPs}, dst: "[::1]:30002", want: []string{servedLocally}},
		{name: "IPv6, gate on", cfg: v6GateOn, objects: []any{v6, v6EPs}, dst: "[::1]:30002", want: []string{rejectedTCP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.cfg(cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			fake := newFake(cfg)
			applyFull(t, fake, snapshotOf(t, tt.objects...), cfg, true)
			if diff := cmp.Diff(tt.want, traceLocal(t, fake, cfg, tt.proto, tt.dst)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

// traceLocal traces a new connection from a process on the node (source 127.0.0.1 or
// ::1 for a loopback destination) and prints each outcome, with the chain of the rule
// that dropped or rejected it.
func traceLocal(t *testing.T, fake interface{ Dump() string }, cfg *Config, proto, dst string) []string {
	t.Helper()
	rs, err := nftmodel.Parse(fake.Dump())
	if err != nil {
		t.Fatalf("nftmodel rejects the table: %v", err)
	}
	if proto == "" {
		proto = "tcp"
	}
	to := netip.MustParseAddrPort(dst)
	src := cfg.NodeIPs[0]
	if to.Addr().IsLoopback() {
		src = netip.MustParseAddr("127.0.0.1")
		if to.Addr().Is6() {
			src = netip.IPv6Loopback()
		}
	}
	pkt := nftmodel.Packet{Proto: proto, Src: src, Dst: to.Addr(), DstPort: int(to.Port()), SrcPort: 40000, Origin: nftmodel.FromLocalProcess}
	res, err := nftmodel.Trace(rs, nftmodel.Node{LocalAddrs: slices.Clone(cfg.NodeIPs)}, pkt, nftmodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range res.Outcomes {
		s := o.String()
		if o.Fate != nftmodel.Accept && len(o.Hits) > 0 {
			s += " by " + o.Hits[len(o.Hits)-1].Chain
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestLocalhostRejectsFollowTheConfiguration renders a full sync over a table another
// configuration left (a kube-proxy with the gate on or off, or loopback added to
// --nodeport-addresses) and checks that the strict fake accepts the transaction and
// ends with the table a fresh render writes: the map, chains, counters and elements
// of protocols no longer rejected go, the others appear.
//
// mutation-checked: keeping the localhost map in Config.containers with the gate off
// (so that its leftover elements are deleted after the map) fails "gate on → gate
// off"; not adding and deleting the objects of protocols not rejected fails "gate on
// → explicit loopback".
func TestLocalhostRejectsFollowTheConfiguration(t *testing.T) {
	configs := []struct {
		name string
		set  func(*Config)
	}{{"gate off", gateOff}, {"gate on", gateOn}, {"explicit loopback", gateOnExplicitLoopback}}
	objects := []any{lbService(), makeSlice("ns", "lb", "lb-1", 8080, ep{IP: "10.180.0.2", Node: testNode}),
		makeService("ns", "dns", "172.30.0.53", func(s *v1.Service) {
			s.Spec.Type, s.Spec.Ports[0].NodePort, s.Spec.Ports[0].Protocol = v1.ServiceTypeNodePort, 30053, v1.ProtocolUDP
		})}
	for _, from := range configs {
		for _, to := range configs {
			t.Run(from.name+" → "+to.name, func(t *testing.T) {
				before, after := testConfig(), testConfig()
				from.set(before)
				to.set(after)
				snap := snapshotOf(t, objects...)
				fake := newFake(before)
				applyFull(t, fake, snap, before, true)
				applyFull(t, fake, snap, after, false)
				fresh := newFake(after)
				applyFull(t, fresh, snap, after, true)
				if diff := cmp.Diff(canonicalDump(t, fresh.Dump()), canonicalDump(t, fake.Dump())); diff != "" {
					t.Errorf("table after the change (-fresh +changed):\n%s", diff)
				}
			})
		}
	}
}

// TestStaleLocalhostRejects checks which reject-map elements a full render deletes
// before the reject chains: those going to the chain of a protocol no longer rejected,
// and only while the map stays (with nothing rejected the map goes first).
func TestStaleLocalhostRejects(t *testing.T) {
	kernel := KernelState{Elements: map[string]map[string]string{mapLocalhostNodePortRej: {
		"tcp . 30001": "goto localhost-nodeport-reject-tcp",
		"tcp . 30000": "goto localhost-nodeport-reject-tcp",
		"udp . 30053": "goto localhost-nodeport-reject-udp",
	}}}
	for _, tc := range []struct {
		name      string
		rejects   []string
		wantStale []string
		wantKept  int
	}{
		{"gate off: the map is deleted whole", nil, nil, 3},
		{"gate on: all stay", LocalhostNodePortRejects(true, false), nil, 3},
		{"loopback named: tcp goes first", LocalhostNodePortRejects(true, true), []string{"tcp . 30000", "tcp . 30001"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.LocalhostNodePortRejects = tc.rejects
			stale, rest := staleLocalhostRejects(cfg, kernel)
			if diff := cmp.Diff(tc.wantStale, stale); diff != "" {
				t.Errorf("stale (-want +got):\n%s", diff)
			}
			if got := len(rest.Elements[mapLocalhostNodePortRej]); got != tc.wantKept {
				t.Errorf("%d elements left for the element sync, want %d", got, tc.wantKept)
			}
			if len(kernel.Elements[mapLocalhostNodePortRej]) != 3 {
				t.Error("the caller's kernel state was changed")
			}
		})
	}
}
