package endpoints

// IP plan: see helpers_test.go; the seeds use its addresses.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// FuzzServicePorts decodes arbitrary JSON into a v1.Service and converts it. Whatever
// the API server would or would not have accepted, conversion must not panic, and what
// it returns must be programmable: valid ports, at most one cluster IP per family.
func FuzzServicePorts(f *testing.F) {
	seeds := []*v1.Service{
		makeService("shop", "web"),
		makeService("shop", "web", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00:96::10"}
			s.Spec.ExternalIPs = []string{"203.0.113.5", "::ffff:203.0.113.6"}
			s.Spec.LoadBalancerSourceRanges = []string{" 10.0.0.0/8", "0.0.0.0/0"}
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			s.Spec.HealthCheckNodePort = 32000
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "198.51.100.1", IPMode: ptr(v1.LoadBalancerIPModeProxy)}}
		}),
		makeService("shop", "web", func(s *v1.Service) {
			s.Spec.Ports = []v1.ServicePort{{Port: 0}, {Name: "x", Port: 70000, Protocol: "ICMP"}}
		}),
	}
	for _, svc := range seeds {
		data, err := json.Marshal(svc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"spec":{"clusterIP":"None"}}`))
	f.Add([]byte(`{"spec":{"clusterIPs":["fe80::1%eth0","0.0.0.0"],"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":-1}}}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var svc v1.Service
		if err := json.Unmarshal(data, &svc); err != nil {
			return
		}
		ports, err := ServicePorts(&svc)
		if SkipReason(&svc) != "" && (len(ports) != 0 || err != nil) {
			t.Fatalf("skipped service yielded ports %v, error %v", ports, err)
		}
		seen := map[ServicePortName]bool{}
		for _, p := range ports {
			if seen[p.Name] {
				t.Errorf("duplicate port %v", p.Name)
			}
			seen[p.Name] = true
			if p.Name.Namespace != svc.Namespace || p.Name.Name != svc.Name {
				t.Errorf("port %v does not belong to %s/%s", p.Name, svc.Namespace, svc.Name)
			}
			if p.Port < 1 || p.Port > 65535 || p.NodePort < 0 || p.NodePort > 65535 || p.HealthCheckNodePort < 0 || p.HealthCheckNodePort > 65535 {
				t.Errorf("port %v has out-of-range numbers: %+v", p.Name, p)
			}
			if n := len(p.ClusterIPs); n < 1 || n > 2 || (n == 2 && FamilyOf(p.ClusterIPs[0]) == FamilyOf(p.ClusterIPs[1])) {
				t.Errorf("port %v has bad cluster IPs %v", p.Name, p.ClusterIPs)
			}
			for _, ip := range slices.Concat(p.ClusterIPs, p.ExternalIPs, p.LoadBalancerVIPs) {
				if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
					t.Errorf("port %v has an unprogrammable address %v", p.Name, ip)
				}
			}
			if p.AffinityTimeoutSeconds < 0 || p.AffinityTimeoutSeconds > 86400 {
				t.Errorf("port %v has affinity timeout %d", p.Name, p.AffinityTimeoutSeconds)
			}
			if !p.Equal(p) {
				t.Errorf("port %v is not equal to itself", p.Name)
			}
			_ = p.Name.String()
			for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
				_ = p.SourceRangesOf(family)
				_ = p.ExternalIPsOf(family)
				_ = p.LoadBalancerVIPsOf(family)
				_ = p.ClusterIP(family)
			}
		}
		// And through the tracker, as the controller would feed it.
		tr := NewTracker(thisNode)
		_ = tr.OnServiceUpdate(&svc)
		snap := tr.Snapshot()
		if len(snap.Services) != len(ports) {
			t.Errorf("tracker holds %d ports, ServicePorts returned %d", len(snap.Services), len(ports))
		}
	})
}

// FuzzConvertSlice decodes arbitrary JSON into an EndpointSlice and converts it. It must
// not panic, and every endpoint must be programmable: a valid address of the slice's
// family, a port in range, sorted hints.
func FuzzConvertSlice(f *testing.F) {
	seeds := []*discovery.EndpointSlice{
		makeSlice("shop", "web", "web-1", []discovery.Endpoint{
			makeEndpoint("10.244.1.5", "node-a"),
			makeEndpoint("10.244.2.5", "node-b", terminating(true), func(e *discovery.Endpoint) {
				e.Hints = &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "zone-b"}, {Name: "zone-a"}}}
			}),
		}),
		makeSlice("shop", "web", "web-2", []discovery.Endpoint{{Addresses: []string{"fd00:244::5"}}}, func(s *discovery.EndpointSlice) {
			s.AddressType = discovery.AddressTypeIPv6
			s.Ports = []discovery.EndpointPort{{Port: ptr[int32](0)}, {Name: ptr("x")}}
		}),
		makeSlice("shop", "web", "web-3", []discovery.Endpoint{makeEndpoint("::ffff:10.244.1.5", "")}),
	}
	for _, slice := range seeds {
		data, err := json.Marshal(slice)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"addressType":"FQDN","endpoints":[{"addresses":["example.com"]}]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var slice discovery.EndpointSlice
		if err := json.Unmarshal(data, &slice); err != nil {
			return
		}
		info, _ := convertSlice(&slice)
		if info == nil {
			t.Fatalf("convertSlice returned no info")
		}
		for key, eps := range info.endpoints {
			for _, e := range eps {
				if !e.IP.IsValid() || e.IP.Is4In6() {
					t.Errorf("port %v: invalid address %v", key, e.IP)
				}
				if (slice.AddressType == discovery.AddressTypeIPv4) != e.IP.Is4() {
					t.Errorf("port %v: address %v in a %s slice", key, e.IP, slice.AddressType)
				}
				if e.Port < 1 || e.Port > 65535 {
					t.Errorf("port %v: endpoint port %d", key, e.Port)
				}
				if !slices.IsSorted(e.ZoneHints) || !slices.IsSorted(e.NodeHints) {
					t.Errorf("port %v: hints not sorted: %v %v", key, e.ZoneHints, e.NodeHints)
				}
				_ = e.String()
			}
		}
		// And through the tracker and Select, with a Service to match.
		tr := NewTracker(thisNode)
		_ = tr.OnServiceUpdate(makeService(slice.Namespace, "web"))
		if slice.Labels == nil {
			slice.Labels = map[string]string{}
		}
		slice.Labels[discovery.LabelServiceName] = "web"
		_ = tr.OnEndpointSliceUpdate(&slice)
		snap := tr.Snapshot()
		for name, eps := range snap.Endpoints {
			if !slices.IsSortedFunc(eps, func(a, b *Endpoint) int { return strings.Compare(a.String(), b.String()) }) {
				t.Errorf("%v: endpoints not sorted", name)
			}
			for _, port := range []*ServicePort{snap.Services[name], {NodePort: 30080, ExternalPolicyLocal: true}, {InternalPolicyLocal: true}} {
				_ = Select(eps, port, NodeTopology{Name: thisNode, Zone: thisZone})
			}
		}
	})
}
