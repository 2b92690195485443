package endpoints

// IP plan: see helpers_test.go. Endpoints of shop/web are 10.244.<n>.x, where n is 1 for
// node-a, 2 for node-b and 3 for node-c; IPv6 endpoints are fd00:244::x.

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

func TestConvertSlice(t *testing.T) {
	tests := []struct {
		name     string
		slice    *discovery.EndpointSlice
		want     map[slicePortKey][]*Endpoint
		wantErrs []string
	}{
		{
			name:  "condition defaults: ready nil is true, serving nil is true, terminating nil is false",
			slice: makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}),
			want: map[slicePortKey][]*Endpoint{
				{"http", v1.ProtocolTCP}: {{IP: netip.MustParseAddr("10.244.1.5"), Port: 8080, NodeName: "node-a", Ready: true, Serving: true}},
			},
		},
		{
			name: "explicit conditions, zone and sorted hints",
			slice: makeSlice("shop", "web", "web-1", []discovery.Endpoint{
				makeEndpoint("10.244.2.5", "node-b", terminating(true), func(e *discovery.Endpoint) {
					e.Zone = ptr("zone-b")
					e.Hints = &discovery.EndpointHints{
						ForZones: []discovery.ForZone{{Name: "zone-c"}, {Name: "zone-a"}},
						ForNodes: []discovery.ForNode{{Name: "node-c"}, {Name: "node-b"}},
					}
				}),
			}),
			want: map[slicePortKey][]*Endpoint{
				{"http", v1.ProtocolTCP}: {{
					IP: netip.MustParseAddr("10.244.2.5"), Port: 8080, NodeName: "node-b", Zone: "zone-b",
					Serving: true, Terminating: true,
					ZoneHints: []string{"zone-a", "zone-c"}, NodeHints: []string{"node-b", "node-c"},
				}},
			},
		},
		{
			name: "ports keyed by name and protocol; nil name is the unnamed port, nil protocol TCP; nil and 0 ports skipped",
			slice: makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "")}, func(s *discovery.EndpointSlice) {
				s.Ports = []discovery.EndpointPort{
					{Name: ptr("http"), Port: ptr[int32](8080), Protocol: ptr(v1.ProtocolTCP)},
					{Name: ptr("http"), Port: ptr[int32](8081), Protocol: ptr(v1.ProtocolUDP)},
					{Port: ptr[int32](7070)},
					{Name: ptr("none"), Protocol: ptr(v1.ProtocolTCP)},
					{Name: ptr("zero"), Port: ptr[int32](0)},
				}
			}),
			want: map[slicePortKey][]*Endpoint{
				{"http", v1.ProtocolTCP}: {{IP: netip.MustParseAddr("10.244.1.5"), Port: 8080, Ready: true, Serving: true}},
				{"http", v1.ProtocolUDP}: {{IP: netip.MustParseAddr("10.244.1.5"), Port: 8081, Ready: true, Serving: true}},
				{"", v1.ProtocolTCP}:     {{IP: netip.MustParseAddr("10.244.1.5"), Port: 7070, Ready: true, Serving: true}},
			},
		},
		{
			name: "FQDN slices are ignored",
			slice: makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("db.example.com", "")}, func(s *discovery.EndpointSlice) {
				s.AddressType = discovery.AddressTypeFQDN
			}),
			want: map[slicePortKey][]*Endpoint{},
		},
		{
			name: "bad and mismatched addresses are skipped with errors naming the slice; empty endpoints ignored",
			slice: makeSlice("shop", "web", "web-1", []discovery.Endpoint{
				makeEndpoint("10.244.1.300", ""),
				makeEndpoint("fd00:244::5", ""),
				{Addresses: nil},
				makeEndpoint("10.244.1.6", ""),
			}),
			want: map[slicePortKey][]*Endpoint{
				{"http", v1.ProtocolTCP}: {{IP: netip.MustParseAddr("10.244.1.6"), Port: 8080, Ready: true, Serving: true}},
			},
			wantErrs: []string{
				`endpointslice shop/web-1: endpoint address "10.244.1.300"`,
				"endpointslice shop/web-1: address fd00:244::5 does not match addressType IPv4",
			},
		},
		{
			name: "IPv6 slice; only the first address of an endpoint counts",
			slice: makeSlice("shop", "web", "web-1", []discovery.Endpoint{{Addresses: []string{"fd00:244::5", "fd00:244::6"}}}, func(s *discovery.EndpointSlice) {
				s.AddressType = discovery.AddressTypeIPv6
			}),
			want: map[slicePortKey][]*Endpoint{
				{"http", v1.ProtocolTCP}: {{IP: netip.MustParseAddr("fd00:244::5"), Port: 8080, Ready: true, Serving: true}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := convertSlice(tc.slice)
			if info.name != tc.slice.Name {
				t.Errorf("name = %q, want %q", info.name, tc.slice.Name)
			}
			if diff := cmp.Diff(tc.want, info.endpoints, cmpOpts...); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if len(tc.wantErrs) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			for _, want := range tc.wantErrs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v does not contain %q", err, want)
				}
			}
		})
	}
}

func TestServiceKeyOfSlice(t *testing.T) {
	key, err := ServiceKeyOfSlice(makeSlice("shop", "web", "web-1", nil))
	if err != nil || key != nn("shop", "web") {
		t.Errorf("ServiceKeyOfSlice = %v, %v; want shop/web", key, err)
	}
	orphan := makeSlice("shop", "web", "orphan", nil, func(s *discovery.EndpointSlice) { s.Labels = nil })
	_, err = ServiceKeyOfSlice(orphan)
	if err == nil || !strings.Contains(err.Error(), "endpointslice shop/orphan: no kubernetes.io/service-name label") {
		t.Errorf("ServiceKeyOfSlice(orphan) error = %v", err)
	}
	tracker := NewTracker(thisNode)
	if err := tracker.OnEndpointSliceUpdate(orphan); err == nil {
		t.Errorf("OnEndpointSliceUpdate accepted a slice without a service label")
	}
	if tracker.Pending() {
		t.Errorf("a slice without a service label made the tracker pending")
	}
}

// TestEndpointsAcrossSlices checks merging through the Tracker: matching by port name and
// protocol, de-duplication across slices, and sorting.
func TestEndpointsAcrossSlices(t *testing.T) {
	tests := []struct {
		name   string
		svc    *v1.Service
		slices []*discovery.EndpointSlice
		want   map[ServicePortName][]string // endpoints as "ip:port node flags"
	}{
		{
			// Sorted by "ip:port" text as kube-proxy sorts (10.244.1.10 before
			// 10.244.1.9). mutation-checked: sorting by AddrPort.Compare again fails
			// this case.
			name: "matched by port name and protocol, sorted by text",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Ports = []v1.ServicePort{
					{Name: "http", Port: 80, Protocol: v1.ProtocolTCP},
					{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
					{Name: "metrics", Port: 9090, Protocol: v1.ProtocolTCP},
				}
			}),
			slices: []*discovery.EndpointSlice{
				makeSlice("shop", "web", "web-2", []discovery.Endpoint{makeEndpoint("10.244.2.9", "node-b"), makeEndpoint("10.244.1.10", "node-a")},
					func(s *discovery.EndpointSlice) {
						s.Ports = append(s.Ports,
							discovery.EndpointPort{Name: ptr("dns"), Port: ptr[int32](5353), Protocol: ptr(v1.ProtocolUDP)},
							discovery.EndpointPort{Name: ptr("dns"), Port: ptr[int32](5354), Protocol: ptr(v1.ProtocolTCP)})
					}),
				makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-a")}),
			},
			want: map[ServicePortName][]string{
				spn("shop", "web", "http", v1.ProtocolTCP): {"10.244.1.10:8080 node-a R", "10.244.1.9:8080 node-a R", "10.244.2.9:8080 node-b R"},
				spn("shop", "web", "dns", v1.ProtocolUDP):  {"10.244.1.10:5353 node-a R", "10.244.2.9:5353 node-b R"},
			},
		},
		{
			name: "unnamed service port matches an unnamed (nil) slice port",
			svc:  makeService("shop", "web", func(s *v1.Service) { s.Spec.Ports[0].Name = "" }),
			slices: []*discovery.EndpointSlice{
				makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-a")}, func(s *discovery.EndpointSlice) {
					s.Ports = []discovery.EndpointPort{{Port: ptr[int32](8080)}}
				}),
			},
			want: map[ServicePortName][]string{
				spn("shop", "web", "", v1.ProtocolTCP): {"10.244.1.9:8080 node-a R"},
			},
		},
		{
			name: "duplicate address: the non-terminating copy wins",
			svc:  makeService("shop", "web"),
			slices: []*discovery.EndpointSlice{
				makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-a", terminating(true))}),
				makeSlice("shop", "web", "web-2", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-b")}),
			},
			want: map[ServicePortName][]string{
				spn("shop", "web", "http", v1.ProtocolTCP): {"10.244.1.9:8080 node-b R"},
			},
		},
		{
			name: "duplicate address: between equals the local copy wins",
			svc:  makeService("shop", "web"),
			slices: []*discovery.EndpointSlice{
				makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-b")}),
				makeSlice("shop", "web", "web-2", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-a")}),
				makeSlice("shop", "web", "web-3", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-c")}),
			},
			want: map[ServicePortName][]string{
				spn("shop", "web", "http", v1.ProtocolTCP): {"10.244.1.9:8080 node-a R"},
			},
		},
		{
			name: "same address on different ports is not a duplicate",
			svc:  makeService("shop", "web"),
			slices: []*discovery.EndpointSlice{
				makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-a")}),
				makeSlice("shop", "web", "web-2", []discovery.Endpoint{makeEndpoint("10.244.1.9", "node-a")}, func(s *discovery.EndpointSlice) {
					s.Ports[0].Port = ptr[int32](8081)
				}),
			},
			want: map[ServicePortName][]string{
				spn("shop", "web", "http", v1.ProtocolTCP): {"10.244.1.9:8080 node-a R", "10.244.1.9:8081 node-a R"},
			},
		},
		{
			name: "a slice of another service does not leak in",
			svc:  makeService("shop", "web"),
			slices: []*discovery.EndpointSlice{
				makeSlice("shop", "api", "api-1", []discovery.Endpoint{makeEndpoint("10.244.1.20", "node-a")}),
				makeSlice("other", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.21", "node-a")}),
			},
			want: map[ServicePortName][]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Both event orders must give the same result.
			for _, reverse := range []bool{false, true} {
				tracker := NewTracker(thisNode)
				if err := tracker.OnServiceUpdate(tc.svc); err != nil {
					t.Fatal(err)
				}
				for i := range tc.slices {
					slice := tc.slices[i]
					if reverse {
						slice = tc.slices[len(tc.slices)-1-i]
					}
					if err := tracker.OnEndpointSliceUpdate(slice); err != nil {
						t.Fatal(err)
					}
				}
				got := map[ServicePortName][]string{}
				for name, eps := range tracker.Snapshot().Endpoints {
					for _, e := range eps {
						got[name] = append(got[name], describe(e))
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("reverse=%v: endpoints (-want +got):\n%s", reverse, diff)
				}
			}
		})
	}
}

// describe renders an endpoint compactly: "ip:port node flags", flags R(eady),
// S(erving, when not ready), T(erminating).
func describe(e *Endpoint) string {
	flags := ""
	if e.Ready {
		flags += "R"
	} else if e.Serving {
		flags += "S"
	}
	if e.Terminating {
		flags += "T"
	}
	return e.String() + " " + e.NodeName + " " + flags
}

func TestEndpointString(t *testing.T) {
	for _, tc := range []struct {
		ep   *Endpoint
		want string
	}{
		{ep("10.244.1.5", ""), "10.244.1.5:8080"},
		{ep("fd00:244::5", ""), "[fd00:244::5]:8080"},
	} {
		if got := tc.ep.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	mixed := []*Endpoint{ep("10.244.1.5", ""), ep("fd00:244::5", ""), ep("10.244.1.6", "")}
	if got := EndpointsOf(mixed, v1.IPv6Protocol); len(got) != 1 || got[0].String() != "[fd00:244::5]:8080" {
		t.Errorf("EndpointsOf(IPv6) = %v", got)
	}
	if got := EndpointsOf(mixed[:1], v1.IPv4Protocol); len(got) != 1 {
		t.Errorf("EndpointsOf(IPv4) = %v", got)
	}
}
