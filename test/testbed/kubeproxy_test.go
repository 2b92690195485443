package testbed_test

// IP plan (doc.go): node-1 10.250.0.11 (outside 10.251.0.11), node-2
// 10.250.0.12; pods on node-1 10.244.1.0/24, on node-2 10.244.2.0/24;
// services 10.96.0.0/16 and fd00:96::/112; NodePort 30080; external IP
// 10.252.0.10, routed from the outside client to node-1, where kube-proxy
// runs.

import (
	"errors"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// trafficCase is one expectation: connections from a client to an address
// are answered by exactly wantPods.
type trafficCase struct {
	name     string
	from     testbed.Client
	proto    string
	addr     string
	wantPods []string
}

// makeService builds a Service in namespace "selftest".
func makeService(name string, tweak func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "selftest"},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeClusterIP},
	}
	tweak(svc)
	return svc
}

func tcpPort(name string, port, target int) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: v1.ProtocolTCP, Port: int32(port), TargetPort: intstr.FromInt32(int32(target))}
}

// TestKubeProxyReference runs the reference kube-proxy on node-1 (iptables
// mode with either backend, and nftables mode) and checks traffic from the
// node, from a pod and from the outside client reaches exactly the pods each
// service selects: the testbed's wiring is right when the reference proxy
// passes.
func TestKubeProxyReference(t *testing.T) {
	testbed.Require(t)
	for _, tc := range []struct{ mode, backend string }{
		{"iptables", "nft"},
		{"iptables", "legacy"},
		{"nftables", "nft"},
	} {
		t.Run(tc.mode+"-"+tc.backend, func(t *testing.T) {
			testKubeProxyReference(t, tc.mode, tc.backend)
		})
	}
}

func testKubeProxyReference(t *testing.T, mode, backend string) {
	ctx := t.Context()
	cluster := testbed.StartControlPlane(t, testbed.WithIPTablesBackend(backend))
	node1 := cluster.AddNode(t, "node-1", map[string]string{v1.LabelTopologyZone: "zone-a"})
	node2 := cluster.AddNode(t, "node-2", map[string]string{v1.LabelTopologyZone: "zone-b"})
	pod1 := cluster.AddPod(t, node1, "web-1")
	pod2 := cluster.AddPod(t, node2, "web-2")
	pod3 := cluster.AddPod(t, node2, "ext-1")

	publish := func(svc *v1.Service, pods ...*testbed.Pod) *v1.Service {
		t.Helper()
		created, err := cluster.CreateService(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		var endpoints []testbed.EndpointSpec
		for _, pod := range pods {
			endpoints = append(endpoints, testbed.EndpointSpec{Pod: pod})
		}
		if err := cluster.PublishEndpoints(ctx, created, endpoints); err != nil {
			t.Fatal(err)
		}
		return created
	}
	web := publish(makeService("web", func(svc *v1.Service) {
		policy := v1.IPFamilyPolicyRequireDualStack
		svc.Spec.IPFamilyPolicy = &policy
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80),
			{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)}}
	}), pod1, pod2)
	nodePort := publish(makeService("nodeport", func(svc *v1.Service) {
		policy := v1.IPFamilyPolicyRequireDualStack
		svc.Spec.IPFamilyPolicy = &policy
		svc.Spec.Type = v1.ServiceTypeNodePort
		port := tcpPort("http", 8080, 8080)
		port.NodePort = 30080
		svc.Spec.Ports = []v1.ServicePort{port}
	}), pod2)
	const externalIP = "10.252.0.10"
	publish(makeService("external", func(svc *v1.Service) {
		svc.Spec.ExternalIPs = []string{externalIP}
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 9376)}
	}), pod3)
	empty := publish(makeService("empty", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	emptyUDP := publish(makeService("empty-udp", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)}}
	}))
	cluster.RouteFromOutside(t, externalIP, node1)

	proxy := cluster.AddKubeProxy(t, node1, mode)
	webAddr := net.JoinHostPort(web.Spec.ClusterIPs[0], "80")
	if _, err := testbed.WaitForReply(ctx, node1, "tcp", webAddr, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	cases := []trafficCase{
		{"cluster IP from node", node1, "tcp", webAddr, []string{"web-1", "web-2"}},
		{"cluster IP from pod", pod1, "tcp", webAddr, []string{"web-1", "web-2"}},
		{"cluster IP udp from node", node1, "udp", net.JoinHostPort(web.Spec.ClusterIPs[0], "53"), []string{"web-1", "web-2"}},
		{"cluster IPv6 from pod", pod1, "tcp", net.JoinHostPort(web.Spec.ClusterIPs[1], "80"), []string{"web-1", "web-2"}},
		{"node port from outside", cluster.Outside, "tcp", net.JoinHostPort(node1.IP, "30080"), []string{"web-2"}},
		{"node port IPv6 from outside", cluster.Outside, "tcp", net.JoinHostPort(node1.IPv6, "30080"), []string{"web-2"}},
		{"node port from pod", pod1, "tcp", net.JoinHostPort(node1.IP, "30080"), []string{"web-2"}},
		{"node port cluster IP from node", node1, "tcp", net.JoinHostPort(nodePort.Spec.ClusterIP, "8080"), []string{"web-2"}},
		{"external IP from outside", cluster.Outside, "tcp", net.JoinHostPort(externalIP, "80"), []string{"ext-1"}},
		{"external IP from node", node1, "tcp", net.JoinHostPort(externalIP, "80"), []string{"ext-1"}},
	}
	if mode == "iptables" {
		// iptables mode serves NodePorts on every local address unless
		// told otherwise; nftables mode only on the node's primary IPs.
		cases = append(cases, trafficCase{"node port on the outside address", cluster.Outside, "tcp", net.JoinHostPort(node1.OutsideIP, "30080"), []string{"web-2"}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// 30 connections: the chance that one of two equally likely
			// endpoints never answers is 2^-29.
			counts, err := testbed.Distribution(ctx, tc.from, tc.proto, tc.addr, 30)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(counts)); !slices.Equal(got, tc.wantPods) {
				t.Errorf("answered by %v, want exactly %v", counts, tc.wantPods)
			}
		})
	}

	t.Run("no endpoints is refused", func(t *testing.T) {
		addr := net.JoinHostPort(empty.Spec.ClusterIP, "80")
		for _, from := range []testbed.Client{node1, pod1} {
			if _, err := testbed.Dial(ctx, from, "tcp", addr); !errors.Is(err, testbed.ErrRefused) {
				t.Errorf("from %s: %v, want ErrRefused", from, err)
			}
		}
		// A UDP port of a service without endpoints is rejected too (ICMP
		// port unreachable), and so reads as refused, not as a timeout.
		udpAddr := net.JoinHostPort(emptyUDP.Spec.ClusterIP, "53")
		for _, from := range []testbed.Client{node1, pod1} {
			if _, err := testbed.Dial(ctx, from, "udp", udpAddr); !errors.Is(err, testbed.ErrRefused) {
				t.Errorf("udp from %s: %v, want ErrRefused", from, err)
			}
		}
	})

	t.Run("external traffic is masqueraded to the node", func(t *testing.T) {
		reply, err := cluster.OutsideDial(ctx, "tcp", net.JoinHostPort(node1.IP, "30080"))
		if err != nil {
			t.Fatal(err)
		}
		if reply.SourceIP() != node1.IP {
			t.Errorf("pod saw source %s, want node-1's %s (masquerade)", reply.Source, node1.IP)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		metrics, err := proxy.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(metrics, "kubeproxy_sync_proxy_rules_duration_seconds") {
			t.Errorf("metrics lack kubeproxy_sync_proxy_rules_duration_seconds")
		}
	})

	t.Run("rules are in the node namespace", func(t *testing.T) {
		argv := []string{"iptables", "-t", "nat", "-S", "KUBE-SERVICES"}
		if mode == "nftables" {
			argv = []string{"nft", "list", "table", "ip", "kube-proxy"}
		}
		output, err := node1.Exec(ctx, argv...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(output, web.Spec.ClusterIPs[0]) {
			t.Errorf("the rules lack the web service's cluster IP %s:\n%s", web.Spec.ClusterIPs[0], output)
		}
	})
}
