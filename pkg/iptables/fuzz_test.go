package iptables

// IP plan: see builders_test.go; the seeds are the hostile cases of docs/reliability.md
// ("Hostile input") written with its addresses.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// hostileSeeds returns the hostile cases of docs/reliability.md, including values the
// API server itself refuses (an object stored before a validation was added, or
// written by a client that bypasses validation, can still reach the proxy).
//
// The fuzz corpus uses small sizes (ports, endpoints): mutating a 100 kB input is
// slow, and what a size can break is already shown by the unit test at full size.
func hostileSeeds(ports, endpointCount int) []hostileSeed {
	manyPorts := makeService("ns", "many-ports", "172.30.0.20", func(s *v1.Service) {
		s.Spec.Ports = nil
		for i := range ports {
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: fmt.Sprintf("p%d", i), Port: int32(1000 + i), Protocol: v1.ProtocolTCP})
		}
	})
	manyPortsSlice := makeSlice("ns", "many-ports", "many-ports-1", 8080, ep{IP: "10.180.0.1", Node: testNode})
	manyPortsSlice.Ports = nil
	for i := range ports {
		manyPortsSlice.Ports = append(manyPortsSlice.Ports, discovery.EndpointPort{Name: ptr.To(fmt.Sprintf("p%d", i)), Port: ptr.To(int32(8000 + i)), Protocol: ptr.To(v1.ProtocolTCP)})
	}

	big := makeSlice("ns", "big", "big-1", 8080)
	for i := range endpointCount {
		big.Endpoints = append(big.Endpoints, discovery.Endpoint{Addresses: []string{fmt.Sprintf("10.181.%d.%d", i/250, i%250+1)}})
	}

	dup1 := makeSlice("ns", "dup", "dup-a", 8080, ep{IP: "10.180.0.5", Node: testNode}, ep{IP: "10.180.0.6", Node: otherNode})
	dup2 := makeSlice("ns", "dup", "dup-b", 8080, ep{IP: "10.180.0.5", Node: otherNode, Terminating: true, NotReady: true})

	wrongFamily := makeSlice("ns", "web", "wrong-family", 8080, ep{IP: "10.180.0.7"})
	wrongFamily.Endpoints = append(wrongFamily.Endpoints,
		discovery.Endpoint{Addresses: []string{"fd00:10::7"}},
		discovery.Endpoint{Addresses: []string{"::ffff:10.180.0.8"}},
		discovery.Endpoint{Addresses: []string{"not-an-ip"}})
	wrongFamily6 := makeSlice("ns", "web", "wrong-family-6", 8080)
	wrongFamily6.AddressType = discovery.AddressTypeIPv6
	wrongFamily6.Endpoints = []discovery.Endpoint{{Addresses: []string{"10.180.0.9"}}, {Addresses: []string{"fd00:10::9"}}}

	twoProtocols := makeService("ns", "dns", "172.30.0.53", func(s *v1.Service) {
		s.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}, {Name: "dns", Port: 53, Protocol: v1.ProtocolTCP}, {Name: "dns", Port: 54, Protocol: v1.ProtocolTCP}}
	})
	twoProtocolsSlice := makeSlice("ns", "dns", "dns-1", 53, ep{IP: "10.180.0.10"})
	twoProtocolsSlice.Ports = []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}, {Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolTCP)}}

	affinity := func(seconds int32) *v1.Service {
		return makeService("ns", "sticky", "172.30.0.30", func(s *v1.Service) {
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(seconds)}}
		})
	}
	stickySlice := makeSlice("ns", "sticky", "sticky-1", 8080, ep{IP: "10.180.0.11"})

	externalIsNode := makeService("ns", "ext", "172.30.0.40", func(s *v1.Service) {
		s.Spec.ExternalIPs = []string{testNodeIP, testNodeIPv6, "203.0.113.40"}
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30040
	})
	extSlice := makeSlice("ns", "ext", "ext-1", 8080, ep{IP: "10.180.0.12", Node: testNode})

	ranges := makeService("ns", "lb", "172.30.0.50", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerSourceRanges = []string{" 10.0.0.0/8 ", "10.1.2.3/8", "fd00::/8", "::ffff:198.51.100.0/120", "::ffff:0:0/95", "0.0.0.0/0", "1.2.3.4/33", "garbage"}
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.50"}, {IP: "fd00:203::50"}, {IP: testNodeIP}}
	})
	lbSlice := makeSlice("ns", "lb", "lb-1", 8080, ep{IP: "10.180.0.13"})

	badPortName := makeService("ns", "ports", "172.30.0.62", func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "p 81", Port: 81, Protocol: v1.ProtocolTCP})
	})
	badPortNameSlice := makeSlice("ns", "ports", "ports-1", 8080, ep{IP: "10.180.0.17"})
	badPortNameSlice.Ports = append(badPortNameSlice.Ports, discovery.EndpointPort{Name: ptr.To("p 81"), Port: ptr.To(int32(8081)), Protocol: ptr.To(v1.ProtocolTCP)})

	dualStack := makeService("ns", "dual", "172.30.0.63", func(s *v1.Service) { s.Spec.ClusterIPs = []string{"172.30.0.63", "fd00:30::63"} })
	zoned := makeSlice("ns", "dual", "dual-1", 8080, ep{IP: "fd00:10::1"})
	zoned.Endpoints = append(zoned.Endpoints, discovery.Endpoint{Addresses: []string{"fe80::1%eth0"}})

	return []hostileSeed{
		{"many-ports", [3]any{manyPorts, manyPortsSlice, nil}},
		{"big", [3]any{makeService("ns", "big", "172.30.0.21"), big, nil}},
		{"dup", [3]any{makeService("ns", "dup", "172.30.0.22"), dup1, dup2}},
		{"wrong-family", [3]any{makeService("ns", "web", "172.30.0.23"), wrongFamily, wrongFamily6}},
		{"slice-first", [3]any{nil, makeSlice("ns", "not-yet", "not-yet-1", 8080, ep{IP: "10.180.0.14"}), nil}},
		{"two-protocols", [3]any{twoProtocols, twoProtocolsSlice, nil}},
		{"affinity-max", [3]any{affinity(86400), stickySlice, nil}},
		{"affinity-huge", [3]any{affinity(1 << 30), stickySlice, nil}},
		{"affinity-negative", [3]any{affinity(-1), stickySlice, nil}},
		{"ext", [3]any{externalIsNode, extSlice, nil}},
		{"lb", [3]any{ranges, lbSlice, nil}},
		// Names the API refuses; written into rule comments they would break the
		// payload (unterminated quote, extra argument).
		{"quote-in-namespace", [3]any{makeService(`sh"op`, "web", "172.30.0.60"), makeSlice(`sh"op`, "web", "web-1", 8080, ep{IP: "10.180.0.15"}), nil}},
		{"newline-in-name", [3]any{makeService("ns", "we\nb", "172.30.0.61"), makeSlice("ns", "we\nb", "web-1", 8080, ep{IP: "10.180.0.16"}), nil}},
		{"space-in-port-name", [3]any{badPortName, badPortNameSlice, nil}},
		// A zoned IPv6 endpoint address: ip6tables-restore refuses "-s fe80::1%eth0".
		{"zoned-endpoint", [3]any{dualStack, zoned, nil}},
	}
}

// hostileSeed is one hostile case: a Service and up to two EndpointSlices (nil: none).
type hostileSeed struct {
	name    string
	objects [3]any
}

// FuzzRenderApply builds a Service and two EndpointSlices from fuzz bytes (JSON, so the
// fuzzer can reach any field, valid or not) and runs them through the whole pure path:
// the tracker's conversion, the full and the partial iptables render of both families,
// and the IPVS render. Whatever the objects hold, nothing may panic, and every payload
// must load into the strict model of iptables-restore: one hostile object that made the
// restore fail would stop every other Service from being programmed.
//
// hack/fuzz.sh finds it by name, so hack/test.sh's short pass runs it (3000 executions,
// about 8 s here).
//
// mutation-checked: rendering port.LoadBalancerSourceRanges instead of
// port.SourceRangesOf(cfg.Family) in fragment.go fails TestHostileSeedsRender on the
// "lb" seed (an IPv6 range in the IPv4 table); accepting zoned endpoint addresses in
// pkg/endpoints/slice.go fails it on "zoned-endpoint"; binding external IPs to kube-ipvs0
// even when they are node IPs (dropping !nodeIP(ip) in pkg/ipvs/render.go) fails it
// on the "ext" seed.
func FuzzRenderApply(f *testing.F) {
	encode := func(obj any) []byte {
		if obj == nil {
			return nil
		}
		data, err := json.Marshal(obj)
		if err != nil {
			f.Fatal(err)
		}
		return data
	}
	for _, seed := range hostileSeeds(101, 20) {
		f.Add(encode(seed.objects[0]), encode(seed.objects[1]), encode(seed.objects[2]))
	}
	f.Fuzz(func(t *testing.T, svcJSON, sliceJSON, slice2JSON []byte) {
		tracker := endpoints.NewTracker(testNode)
		empty := tracker.Snapshot()
		var svc v1.Service
		if json.Unmarshal(svcJSON, &svc) == nil {
			_ = tracker.OnServiceUpdate(&svc) // conversion errors are the controller's to report
		}
		for _, data := range [][]byte{sliceJSON, slice2JSON} {
			var slice discovery.EndpointSlice
			if json.Unmarshal(data, &slice) == nil {
				_ = tracker.OnEndpointSliceUpdate(&slice)
			}
		}
		snap := tracker.Snapshot()
		checkRenders(t, empty, snap)
	})
}

// checkRenders renders snap in both families, fully and as a partial sync from prev,
// and fails if a payload does not load.
func checkRenders(t *testing.T, prev, snap *endpoints.Snapshot) {
	t.Helper()
	for _, cfg := range []*Config{testConfig(), testConfigV6()} {
		family := ruleset.IPv4
		if cfg.Family == v1.IPv6Protocol {
			family = ruleset.IPv6
		}
		full := Render(snap, cfg, nil)
		if err := ruleset.New(family).Apply(full.Payload, true); err != nil {
			t.Fatalf("%s full payload rejected: %v\n%s", cfg.Family, err, full.Payload)
		}
		kernel := ruleset.New(family)
		if err := kernel.Apply(Render(prev, cfg, nil).Payload, true); err != nil {
			t.Fatalf("%s initial payload rejected: %v", cfg.Family, err)
		}
		partial := RenderPartial(prev, snap, snap.SortedChanged(), cfg)
		if err := kernel.Apply(partial.Payload, true); err != nil {
			t.Fatalf("%s partial payload rejected: %v\n%s", cfg.Family, err, partial.Payload)
		}
		state := ipvs.Render(snap, &ipvs.Config{FamilyConfig: cfg.FamilyConfig})
		for _, s := range state.Servers {
			if !s.Key.Addr.IsValid() || (s.Key.Addr.Is4() != (cfg.Family == v1.IPv4Protocol)) {
				t.Fatalf("%s IPVS virtual server %v has an address of the wrong family", cfg.Family, s.Key)
			}
		}
		// An external or load-balancer IP equal to the node's IP must not be bound to
		// kube-ipvs0: unbinding it when the Service goes would take the node's own
		// address with it (kube-proxy binds only addresses that are not local).
		for _, a := range state.Addresses {
			if slices.Contains(cfg.NodeIPs, a) || a.Is4() != (cfg.Family == v1.IPv4Protocol) {
				t.Fatalf("%s IPVS would bind %v to the dummy interface (node IPs %v)", cfg.Family, a, cfg.NodeIPs)
			}
		}
	}
}

// testConfigV6 returns the IPv6 Config of node1.
func testConfigV6() *Config {
	return &Config{FamilyConfig: node.FamilyConfig{
		Family:  v1.IPv6Protocol,
		Node:    endpoints.NodeTopology{Name: testNode, Zone: testZone},
		NodeIPs: []netip.Addr{netip.MustParseAddr(testNodeIPv6)},
		Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("fd00:10::/64")),
	}}
}

// TestHostileSeedsRender runs the hostile cases through the same checks as
// FuzzRenderApply in the ordinary unit-test pass, one subtest each, and checks the
// cases whose outcome is more than "loads": everything that could be programmed is.
func TestHostileSeedsRender(t *testing.T) {
	for _, seed := range hostileSeeds(150, 1000) {
		t.Run(seed.name, func(t *testing.T) {
			tracker := endpoints.NewTracker(testNode)
			empty := tracker.Snapshot()
			if svc, ok := seed.objects[0].(*v1.Service); ok {
				_ = tracker.OnServiceUpdate(svc)
			}
			for _, obj := range seed.objects[1:] {
				if slice, ok := obj.(*discovery.EndpointSlice); ok {
					_ = tracker.OnEndpointSliceUpdate(slice)
				}
			}
			checkRenders(t, empty, tracker.Snapshot())
		})
	}
}
