package endpoints

// IP plan: see helpers_test.go. Services here are shop/web with cluster IP 10.96.0.10
// (fd00:96::10 for IPv6), external IPs from 203.0.113.0/24 and 2001:db8::/64, LB ingress
// from 198.51.100.0/24.

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// wantPort returns what ServicePorts makes of makeService's default port, changed by
// the tweaks.
func wantPort(tweaks ...func(*ServicePort)) *ServicePort {
	p := &ServicePort{
		Name:       spn("shop", "web", "http", v1.ProtocolTCP),
		Port:       80,
		ClusterIPs: addrs("10.96.0.10"),
	}
	for _, tweak := range tweaks {
		tweak(p)
	}
	return p
}

func TestServicePorts(t *testing.T) {
	tests := []struct {
		name string
		svc  *v1.Service
		want []*ServicePort
		// wantErrs are substrings the joined error must contain, in any order.
		wantErrs []string
	}{
		{
			name: "cluster IP service",
			svc:  makeService("shop", "web"),
			want: []*ServicePort{wantPort()},
		},
		{
			name: "ExternalName skipped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeExternalName
				s.Spec.ExternalName = "example.com"
			}),
		},
		{
			name: "headless skipped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ClusterIPNone, []string{v1.ClusterIPNone}
			}),
		},
		{
			name: "no cluster IP skipped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
			}),
		},
		{
			name: "service-proxy-name label skipped whatever its value",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Labels = map[string]string{LabelServiceProxyName: ""}
			}),
		},
		{
			name: "headless label skipped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Labels = map[string]string{LabelHeadless: ""}
			}),
		},
		{
			name: "both labels skipped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Labels = map[string]string{LabelHeadless: "", LabelServiceProxyName: "other-proxy"}
			}),
		},
		{
			name: "unnamed port and default protocol",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Ports = []v1.ServicePort{{Port: 80}}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.Name = spn("shop", "web", "", v1.ProtocolTCP) })},
		},
		{
			name: "same name on TCP and UDP, SCTP, in spec order",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Ports = []v1.ServicePort{
					{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
					{Name: "dns", Port: 53, Protocol: v1.ProtocolTCP},
					{Name: "sig", Port: 3868, Protocol: v1.ProtocolSCTP},
				}
			}),
			want: []*ServicePort{
				wantPort(func(p *ServicePort) { p.Name, p.Port = spn("shop", "web", "dns", v1.ProtocolUDP), 53 }),
				wantPort(func(p *ServicePort) { p.Name, p.Port = spn("shop", "web", "dns", v1.ProtocolTCP), 53 }),
				wantPort(func(p *ServicePort) { p.Name, p.Port = spn("shop", "web", "sig", v1.ProtocolSCTP), 3868 }),
			},
		},
		{
			name: "bad ports left out, good ones kept",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeNodePort
				s.Spec.Ports = []v1.ServicePort{
					{Name: "icmp", Port: 1, Protocol: "ICMP"},
					{Name: "zero", Port: 0},
					{Name: "big", Port: 65536},
					{Name: "http", Port: 80, NodePort: 70000},
					{Name: "http", Port: 81},
				}
			}),
			want: []*ServicePort{wantPort()},
			wantErrs: []string{
				`service shop/web: port "icmp": unsupported protocol "ICMP"`,
				`service shop/web: port "zero": port 0 out of range 1-65535`,
				`service shop/web: port "big": port 65536 out of range 1-65535`,
				`service shop/web: port "http": nodePort 70000 out of range`,
				`service shop/web: port "http"/TCP: duplicate port name and protocol`,
			},
		},
		{
			name: "node port",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeNodePort
				s.Spec.Ports[0].NodePort = 30080
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.NodePort = 30080 })},
		},
		{
			name: "invalid cluster IP: nothing to program",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.300", []string{"10.96.0.300"}
			}),
			wantErrs: []string{`service shop/web: cluster IP "10.96.0.300"`, "service shop/web: no valid cluster IP"},
		},
		{
			name: "dual-stack cluster IPs",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00:96::10"}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.ClusterIPs = addrs("10.96.0.10", "fd00:96::10") })},
		},
		{
			name: "IPv6 primary",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00:96::10", []string{"fd00:96::10", "10.96.0.10"}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.ClusterIPs = addrs("fd00:96::10", "10.96.0.10") })},
		},
		{
			name: "clusterIP alone when clusterIPs is unset",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.11", nil
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.ClusterIPs = addrs("10.96.0.11") })},
		},
		{
			name: "second cluster IP of one family dropped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ClusterIPs = []string{"10.96.0.10", "10.96.0.11"}
			}),
			want:     []*ServicePort{wantPort()},
			wantErrs: []string{`service shop/web: cluster IP "10.96.0.11": a second cluster IP of the same family`},
		},
		{
			name: "external IPs: trimmed, unmapped, de-duplicated; bad ones dropped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ExternalIPs = []string{
					"203.0.113.5", " 203.0.113.6 ", "::ffff:203.0.113.7", "203.0.113.5", "2001:db8::5",
					"203.0.113", "fe80::1%eth0", "0.0.0.0",
				}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) {
				p.ExternalIPs = addrs("203.0.113.5", "203.0.113.6", "203.0.113.7", "2001:db8::5")
			})},
			wantErrs: []string{
				`service shop/web: external IP "203.0.113"`,
				`service shop/web: external IP "fe80::1%eth0": zoned address not allowed`,
				`service shop/web: external IP "0.0.0.0": unspecified address not allowed`,
			},
		},
		{
			name: "source ranges: trimmed, masked, de-duplicated; bad ones dropped",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Spec.LoadBalancerSourceRanges = []string{" 10.0.0.0/8 ", "10.1.2.3/16", "10.0.0.0/8", "2001:db8::/32", "10.0.0.0/33", "10.0.0.1"}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) {
				p.LoadBalancerSourceRanges = prefixes("10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32")
			})},
			wantErrs: []string{
				`service shop/web: loadBalancerSourceRanges "10.0.0.0/33"`,
				`service shop/web: loadBalancerSourceRanges "10.0.0.1"`,
			},
		},
		{
			name: "load-balancer ingress: ipMode Proxy skipped, VIP and unset kept, hostname ignored",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{
					{IP: "198.51.100.1", IPMode: ptr(v1.LoadBalancerIPModeProxy)},
					{IP: "198.51.100.2", IPMode: ptr(v1.LoadBalancerIPModeVIP)},
					{IP: "198.51.100.3"},
					{Hostname: "lb.example.com"},
					{IP: "198.51.100.3"},
					{IP: "198.51.100.x"},
				}
			}),
			want:     []*ServicePort{wantPort(func(p *ServicePort) { p.LoadBalancerVIPs = addrs("198.51.100.2", "198.51.100.3") })},
			wantErrs: []string{`service shop/web: load-balancer ingress IP "198.51.100.x"`},
		},
		{
			name: "ClientIP affinity defaults to 10800 seconds",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.AffinityTimeoutSeconds = 10800 })},
		},
		{
			name: "ClientIP affinity with explicit timeout",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.AffinityTimeoutSeconds = 60 })},
		},
		{
			name: "ClientIP affinity with out-of-range timeout falls back to the default",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr[int32](0)}}
			}),
			want:     []*ServicePort{wantPort(func(p *ServicePort) { p.AffinityTimeoutSeconds = 10800 })},
			wantErrs: []string{"service shop/web: sessionAffinityConfig.clientIP.timeoutSeconds 0 out of range"},
		},
		{
			name: "affinity config without ClientIP affinity is ignored",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.SessionAffinity = v1.ServiceAffinityNone
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
			}),
			want: []*ServicePort{wantPort()},
		},
		{
			name: "healthCheckNodePort for LoadBalancer with Local policy",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.HealthCheckNodePort = 32000
				s.Spec.Ports[0].NodePort = 30080
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) {
				p.NodePort, p.ExternalPolicyLocal, p.HealthCheckNodePort = 30080, true, 32000
			})},
		},
		{
			name: "no healthCheckNodePort for LoadBalancer with Cluster policy",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
				s.Spec.HealthCheckNodePort = 32000
				s.Spec.Ports[0].NodePort = 30080
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.NodePort = 30080 })},
		},
		{
			name: "no healthCheckNodePort for NodePort with Local policy",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeNodePort
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.HealthCheckNodePort = 32000
				s.Spec.Ports[0].NodePort = 30080
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.NodePort, p.ExternalPolicyLocal = 30080, true })},
		},
		{
			name: "externalTrafficPolicy Local ignored for a ClusterIP-only service",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			}),
			want: []*ServicePort{wantPort()},
		},
		{
			name: "externalTrafficPolicy Local applies to a ClusterIP service with external IPs",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.ExternalIPs = []string{"203.0.113.5"}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) {
				p.ExternalIPs, p.ExternalPolicyLocal = addrs("203.0.113.5"), true
			})},
		},
		{
			name: "internalTrafficPolicy Local",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.InternalTrafficPolicy = ptr(v1.ServiceInternalTrafficPolicyLocal)
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.InternalPolicyLocal = true })},
		},
		{
			name: "internalTrafficPolicy Cluster",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Spec.InternalTrafficPolicy = ptr(v1.ServiceInternalTrafficPolicyCluster)
			}),
			want: []*ServicePort{wantPort()},
		},
		{
			name: "scheduler annotation",
			svc: makeService("shop", "web", func(s *v1.Service) {
				s.Annotations = map[string]string{SchedulerAnnotation: "mh"}
			}),
			want: []*ServicePort{wantPort(func(p *ServicePort) { p.Scheduler = "mh" })},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ServicePorts(tc.svc)
			if diff := cmp.Diff(tc.want, got, cmpOpts...); diff != "" {
				t.Errorf("ServicePorts (-want +got):\n%s", diff)
			}
			if len(tc.wantErrs) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(tc.wantErrs) > 0 && err == nil {
				t.Fatalf("no error, want %q", tc.wantErrs)
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if err != nil {
				// Every line names the Service.
				for _, line := range strings.Split(err.Error(), "\n") {
					if !strings.HasPrefix(line, "service shop/web: ") {
						t.Errorf("error line %q does not name the service", line)
					}
				}
			}
		})
	}
}

func TestSkipReason(t *testing.T) {
	tests := []struct {
		name string
		svc  *v1.Service
		want string
	}{
		{"programmed", makeService("shop", "web"), ""},
		{"ExternalName", makeService("shop", "web", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeExternalName }), "type ExternalName"},
		{"headless", makeService("shop", "web", func(s *v1.Service) { s.Spec.ClusterIP = v1.ClusterIPNone }), "headless (clusterIP: None)"},
		{"no cluster IP", makeService("shop", "web", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil }), "no cluster IP allocated"},
		{"proxy name", makeService("shop", "web", func(s *v1.Service) { s.Labels = map[string]string{LabelServiceProxyName: "x"} }), "labelled " + LabelServiceProxyName},
		{"headless label", makeService("shop", "web", func(s *v1.Service) { s.Labels = map[string]string{LabelHeadless: ""} }), "labelled " + LabelHeadless},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SkipReason(tc.svc); got != tc.want {
				t.Errorf("SkipReason = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestServicePortNameString pins the text that is hashed into chain names; it must match
// kube-proxy's ServicePortName.String byte for byte.
func TestServicePortNameString(t *testing.T) {
	tests := []struct {
		name ServicePortName
		want string
	}{
		{spn("bench", "svc-5", "http", v1.ProtocolTCP), "bench/svc-5:http"},
		{spn("bench", "svc-5", "", v1.ProtocolTCP), "bench/svc-5"},
		{spn("kube-system", "kube-dns", "dns", v1.ProtocolUDP), "kube-system/kube-dns:dns"},
	}
	for _, tc := range tests {
		if got := tc.name.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	// ServicePorts produces the unnamed form for an unnamed port.
	ports := mustServicePorts(t, makeService("bench", "svc-5", func(s *v1.Service) { s.Spec.Ports[0].Name = "" }))
	if got := ports[0].Name.String(); got != "bench/svc-5" {
		t.Errorf("unnamed port String() = %q, want bench/svc-5", got)
	}
}

func TestServicePortNameCompare(t *testing.T) {
	ordered := []ServicePortName{
		spn("a", "a", "", v1.ProtocolTCP),
		spn("a", "a", "", v1.ProtocolUDP),
		spn("a", "a", "x", v1.ProtocolTCP),
		spn("a", "b", "", v1.ProtocolTCP),
		spn("b", "a", "", v1.ProtocolTCP),
	}
	for i := range ordered {
		for j := range ordered {
			got := ordered[i].Compare(ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestSourceRangesOf(t *testing.T) {
	tests := []struct {
		name     string
		ranges   []string
		wantIPv4 []string
		wantIPv6 []string
	}{
		{name: "none"},
		{name: "per family", ranges: []string{"10.0.0.0/8", "2001:db8::/32", "192.168.0.0/24"},
			wantIPv4: []string{"10.0.0.0/8", "192.168.0.0/24"}, wantIPv6: []string{"2001:db8::/32"}},
		{name: "zero-length prefix allows any of its family only",
			ranges:   []string{"10.0.0.0/8", " 0.0.0.0/0", "2001:db8::/32"},
			wantIPv6: []string{"2001:db8::/32"}},
		{name: "zero-length prefix written with host bits", ranges: []string{"10.1.2.3/0", "fd00::/8", "::/0"},
			wantIPv4: nil, wantIPv6: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := makeService("shop", "web", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeLoadBalancer
				s.Spec.LoadBalancerSourceRanges = tc.ranges
			})
			port := mustServicePorts(t, svc)[0]
			if diff := cmp.Diff(prefixes(tc.wantIPv4...), port.SourceRangesOf(v1.IPv4Protocol), cmpOpts...); diff != "" {
				t.Errorf("IPv4 (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(prefixes(tc.wantIPv6...), port.SourceRangesOf(v1.IPv6Protocol), cmpOpts...); diff != "" {
				t.Errorf("IPv6 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFamilyAccessors(t *testing.T) {
	svc := makeService("shop", "web", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00:96::10"}
		s.Spec.ExternalIPs = []string{"203.0.113.5", "2001:db8::5"}
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "198.51.100.1"}}
	})
	port := mustServicePorts(t, svc)[0]
	if got := port.ClusterIP(v1.IPv6Protocol); got.String() != "fd00:96::10" {
		t.Errorf("ClusterIP(IPv6) = %v", got)
	}
	if diff := cmp.Diff(addrs("2001:db8::5"), port.ExternalIPsOf(v1.IPv6Protocol), cmpOpts...); diff != "" {
		t.Errorf("ExternalIPsOf(IPv6) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(addrs("198.51.100.1"), port.LoadBalancerVIPsOf(v1.IPv4Protocol), cmpOpts...); diff != "" {
		t.Errorf("LoadBalancerVIPsOf(IPv4) (-want +got):\n%s", diff)
	}
	if got := port.LoadBalancerVIPsOf(v1.IPv6Protocol); len(got) != 0 {
		t.Errorf("LoadBalancerVIPsOf(IPv6) = %v, want none", got)
	}
	single := mustServicePorts(t, makeService("shop", "web"))[0]
	if got := single.ClusterIP(v1.IPv6Protocol); got.IsValid() {
		t.Errorf("ClusterIP(IPv6) of a single-stack service = %v, want the zero Addr", got)
	}
}

func TestTrafficScopes(t *testing.T) {
	tests := []struct {
		name                                 string
		port                                 ServicePort
		wantExternal, wantCluster, wantLocal bool
	}{
		{name: "cluster IP only", port: ServicePort{}, wantCluster: true},
		{name: "internal Local", port: ServicePort{InternalPolicyLocal: true}, wantLocal: true},
		{name: "node port", port: ServicePort{NodePort: 30080}, wantExternal: true, wantCluster: true},
		{name: "node port external Local", port: ServicePort{NodePort: 30080, ExternalPolicyLocal: true},
			wantExternal: true, wantCluster: true, wantLocal: true},
		{name: "external Local without external access", port: ServicePort{ExternalPolicyLocal: true}, wantCluster: true},
		// Pods and the node reach an externally accessible port through the cluster-wide
		// set even when internal traffic is Local, because the external IP may be used
		// from inside the cluster.
		{name: "internal Local with external IP", port: ServicePort{InternalPolicyLocal: true, ExternalIPs: addrs("203.0.113.5")},
			wantExternal: true, wantCluster: true, wantLocal: true},
		{name: "LB VIP", port: ServicePort{LoadBalancerVIPs: addrs("198.51.100.1")}, wantExternal: true, wantCluster: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.port.ExternallyAccessible(); got != tc.wantExternal {
				t.Errorf("ExternallyAccessible = %v, want %v", got, tc.wantExternal)
			}
			if got := tc.port.UsesClusterEndpoints(); got != tc.wantCluster {
				t.Errorf("UsesClusterEndpoints = %v, want %v", got, tc.wantCluster)
			}
			if got := tc.port.UsesLocalEndpoints(); got != tc.wantLocal {
				t.Errorf("UsesLocalEndpoints = %v, want %v", got, tc.wantLocal)
			}
		})
	}
}

func TestServicePortEqual(t *testing.T) {
	base := mustServicePorts(t, makeService("shop", "web"))[0]
	same := mustServicePorts(t, makeService("shop", "web"))[0]
	if !base.Equal(same) {
		t.Errorf("two conversions of one Service differ")
	}
	var nilPort *ServicePort
	if base.Equal(nil) || !nilPort.Equal(nil) {
		t.Errorf("Equal mishandles nil")
	}
	changes := map[string]func(*v1.Service){
		"port":        func(s *v1.Service) { s.Spec.Ports[0].Port = 81 },
		"cluster IPs": func(s *v1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00:96::10"} },
		"external IP": func(s *v1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.5"} },
		"affinity":    func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP },
		"scheduler":   func(s *v1.Service) { s.Annotations = map[string]string{SchedulerAnnotation: "rr"} },
		"internal":    func(s *v1.Service) { s.Spec.InternalTrafficPolicy = ptr(v1.ServiceInternalTrafficPolicyLocal) },
		"source range": func(s *v1.Service) {
			s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8"}
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			changed := mustServicePorts(t, makeService("shop", "web", change))[0]
			if base.Equal(changed) {
				t.Errorf("Equal misses a change of %s", name)
			}
		})
	}
}
