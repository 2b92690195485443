package nftkernel

// The world of test/nftables (world_test.go), whose tables the pinned kube-proxy
// v1.37.2 programmed into pkg/nftables/nftmodel/testdata/kube-proxy-{ip,ip6}.nft on the
// testbed's node-1: node-1 10.250.0.11 / fd00:250::11 (primary, the only node-port
// address in nftables mode), pods 10.244.0.0/16 / fd00:244::/32 (web-1 .1.2 and
// local-1 .1.3 on node-1, web-2 .2.2 and ext-1 .2.3 on node-2), services 10.96.0.0/16
// / fd00:96::/112, outside client 10.251.0.100.

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// worldPod is a pod of the world: its addresses and node.
type worldPod struct{ v4, v6, node string }

var (
	web1   = worldPod{"10.244.1.2", "fd00:244:1::2", "node-1"}
	local1 = worldPod{"10.244.1.3", "fd00:244:1::3", "node-1"}
	web2   = worldPod{"10.244.2.2", "fd00:244:2::2", "node-2"}
	ext1   = worldPod{"10.244.2.3", "fd00:244:2::3", "node-2"}
)

// kubeProxyWorld feeds the world's Services and EndpointSlices to a tracker for
// node-1 and returns its snapshot.
func kubeProxyWorld(t *testing.T) *endpoints.Snapshot {
	t.Helper()
	tracker := endpoints.NewTracker("node-1")
	add := func(name string, ips []string, ports []v1.ServicePort, pods []worldPod, tweak func(*v1.Service)) {
		svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "nft", Name: name},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ips[0], ClusterIPs: ips, Ports: ports}}
		if tweak != nil {
			tweak(svc)
		}
		if err := tracker.OnServiceUpdate(svc); err != nil {
			t.Fatal(err)
		}
		for _, family := range []discovery.AddressType{discovery.AddressTypeIPv4, discovery.AddressTypeIPv6} {
			slice := &discovery.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "nft", Name: name + "-" + string(family), Labels: map[string]string{discovery.LabelServiceName: name}},
				AddressType: family,
			}
			for _, p := range ports {
				slice.Ports = append(slice.Ports, discovery.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(p.TargetPort.IntVal), Protocol: ptr.To(p.Protocol)})
			}
			for _, pod := range pods {
				ip := pod.v4
				if family == discovery.AddressTypeIPv6 {
					ip = pod.v6
				}
				slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(pod.node),
					Conditions: discovery.EndpointConditions{Ready: ptr.To(true)}})
			}
			if err := tracker.OnEndpointSliceUpdate(slice); err != nil {
				t.Fatal(err)
			}
		}
	}
	port := func(name string, proto v1.Protocol, port, target, nodePort int32) v1.ServicePort {
		p := v1.ServicePort{Name: name, Protocol: proto, Port: port, NodePort: nodePort}
		p.TargetPort.IntVal = target
		return p
	}
	http := []v1.ServicePort{port("http", v1.ProtocolTCP, 80, 80, 0)}
	withPort := func(p v1.ServicePort, typ v1.ServiceType) func(*v1.Service) {
		return func(s *v1.Service) { s.Spec.Ports, s.Spec.Type = []v1.ServicePort{p}, typ }
	}
	lb := func(ingress, nodePort int32, ip string, ranges ...string) func(*v1.Service) {
		return func(s *v1.Service) {
			s.Spec.Type, s.Spec.LoadBalancerSourceRanges = v1.ServiceTypeLoadBalancer, ranges
			s.Spec.Ports = []v1.ServicePort{port("http", v1.ProtocolTCP, 80, 80, nodePort)}
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}}
		}
	}
	eTPLocal := func(tweak func(*v1.Service)) func(*v1.Service) {
		return func(s *v1.Service) {
			tweak(s)
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		}
	}
	add("web", []string{"10.96.1.1", "fd00:96::101"}, []v1.ServicePort{port("http", v1.ProtocolTCP, 80, 80, 0), port("dns", v1.ProtocolUDP, 53, 53, 0)}, []worldPod{web1, web2, ext1}, nil)
	add("nodeport", []string{"10.96.1.2", "fd00:96::102"}, []v1.ServicePort{port("http", v1.ProtocolTCP, 8080, 8080, 0)}, []worldPod{web2},
		withPort(port("http", v1.ProtocolTCP, 8080, 8080, 30080), v1.ServiceTypeNodePort))
	add("local", []string{"10.96.1.3"}, http, []worldPod{web1, web2}, eTPLocal(withPort(port("http", v1.ProtocolTCP, 80, 80, 30081), v1.ServiceTypeNodePort)))
	add("local-remote", []string{"10.96.1.4"}, http, []worldPod{web2}, eTPLocal(withPort(port("http", v1.ProtocolTCP, 80, 80, 30082), v1.ServiceTypeNodePort)))
	add("lb", []string{"10.96.1.5"}, http, []worldPod{web2}, lb(0, 30083, "10.252.0.20", "10.251.0.100/32"))
	add("lb-denied", []string{"10.96.1.6"}, http, []worldPod{web2}, lb(0, 30084, "10.252.0.21", "192.0.2.0/24"))
	add("external", []string{"10.96.1.7"}, []v1.ServicePort{port("http", v1.ProtocolTCP, 80, 9376, 0)}, []worldPod{ext1},
		func(s *v1.Service) { s.Spec.ExternalIPs = []string{"10.252.0.10"} })
	add("affinity", []string{"10.96.1.8", "fd00:96::108"}, http, []worldPod{web1, web2}, func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
	})
	add("itp-local", []string{"10.96.1.9"}, http, []worldPod{web2}, func(s *v1.Service) {
		s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	})
	add("empty", []string{"10.96.1.10", "fd00:96::10a"}, http, nil, nil)
	add("empty-udp", []string{"10.96.1.11"}, []v1.ServicePort{port("dns", v1.ProtocolUDP, 53, 53, 0)}, nil, nil)
	add("empty-nodeport", []string{"10.96.1.12"}, http, nil, withPort(port("http", v1.ProtocolTCP, 80, 80, 30085), v1.ServiceTypeNodePort))
	add("lb-local", []string{"10.96.1.13"}, http, []worldPod{local1, web2}, eTPLocal(func(s *v1.Service) {
		lb(0, 30086, "10.252.0.22")(s)
		s.Spec.HealthCheckNodePort = 30089
	}))

	// default/kubernetes: the API server, off any node.
	kubernetes := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"},
			Ports: []v1.ServicePort{port("https", v1.ProtocolTCP, 443, 6443, 0)}}}
	if err := tracker.OnServiceUpdate(kubernetes); err != nil {
		t.Fatal(err)
	}
	apiSlice := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "kubernetes", Labels: map[string]string{discovery.LabelServiceName: "kubernetes"}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443), Protocol: ptr.To(v1.ProtocolTCP)}},
		Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.250.0.1"}, Conditions: discovery.EndpointConditions{Ready: ptr.To(true)}}},
	}
	if err := tracker.OnEndpointSliceUpdate(apiSlice); err != nil {
		t.Fatal(err)
	}
	return tracker.Snapshot()
}

// node1Config is node-1's Config in the world for one family.
func node1Config(family v1.IPFamily) *nftables.Config {
	nodeIP, pods, services := "10.250.0.11", "10.244.0.0/16", "10.96.0.0/16"
	if family == v1.IPv6Protocol {
		nodeIP, pods, services = "fd00:250::11", "fd00:244::/32", "fd00:96::/112"
	}
	ip := netip.MustParseAddr(nodeIP)
	return &nftables.Config{FamilyConfig: node.FamilyConfig{
		Family: family, Node: endpoints.NodeTopology{Name: "node-1", Zone: "zone-a"},
		NodeIPs: []netip.Addr{ip}, Local: node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix(pods)),
		RestrictNodePorts: true, NodePortIPs: []netip.Addr{ip},
	}, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix(services)}}
}

// TestSameTableAsKubeProxy loads Switchyard's full render of the world into a
// namespace and compares `nft list table` there with the table the pinned kube-proxy
// v1.37.2 programmed for the same world on the testbed, in nftmodel's canonical form
// (objects sorted by name, elements sorted, rules in order): the claim that a node
// moving between kube-proxy's nftables mode and Switchyard's reads the same.
//
// mutation-checked: writing the masquerade rule of the external chains without its
// "masquerade" comment, or dropping the hairpin element of local endpoints, fails this
// test with a canonical diff.
func TestSameTableAsKubeProxy(t *testing.T) {
	requireRoot(t)
	snap := kubeProxyWorld(t)
	for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		t.Run(string(family), func(t *testing.T) {
			cfg := node1Config(family)
			nftFamily := string(cfg.NFTFamily())
			want, err := os.ReadFile(fmt.Sprintf("../../pkg/nftables/nftmodel/testdata/kube-proxy-%s.nft", nftFamily))
			if err != nil {
				t.Fatal(err)
			}
			fake := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
			plan := nftables.Render(fake.NewTransaction, snap, cfg, nftables.EmptyKernel())
			ns := netnsNFT(t, "kp"+nftFamily)
			load := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
			load.Stdin = bytes.NewReader([]byte(plan.String()))
			if out, err := load.CombinedOutput(); err != nil {
				t.Fatalf("nft -f: %v\n%s", err, out)
			}
			got := nftIn(t, ns, "list", "table", nftFamily, nftables.TableName)
			if diff := cmp.Diff(canonical(t, string(want)), canonical(t, got)); diff != "" {
				t.Errorf("nft list table %s kube-proxy differs from kube-proxy's (-kube-proxy +switchyard):\n%s", nftFamily, diff)
			}
		})
	}
}

// TestTakeOverFromKubeProxy loads the table kube-proxy v1.37.2 programmed for the
// world (its `nft list table` output) into a namespace and lets a Proxier start there,
// as when Switchyard replaces kube-proxy on a node: the first full sync is one atomic
// transaction, keeps every element kube-proxy wrote (no element is deleted or added
// again) and leaves the table as it was.
func TestTakeOverFromKubeProxy(t *testing.T) {
	requireRoot(t)
	snap := kubeProxyWorld(t)
	for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		t.Run(string(family), func(t *testing.T) {
			cfg := node1Config(family)
			nftFamily := string(cfg.NFTFamily())
			kubeProxy, err := os.ReadFile(fmt.Sprintf("../../pkg/nftables/nftmodel/testdata/kube-proxy-%s.nft", nftFamily))
			if err != nil {
				t.Fatal(err)
			}
			ns := netnsNFT(t, "to"+nftFamily)
			load := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
			load.Stdin = bytes.NewReader(kubeProxy)
			if out, err := load.CombinedOutput(); err != nil {
				t.Fatalf("loading kube-proxy's table: %v\n%s", err, out)
			}
			nft, err := knftables.New(cfg.NFTFamily(), nftables.TableName)
			if err != nil {
				t.Fatal(err)
			}
			p, err := nftables.NewProxier(cfg, nft, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.SyncDetailed(t.Context(), snap)
			if err != nil {
				t.Fatalf("first sync over kube-proxy's table: %v\n%s", err, res.Transaction)
			}
			if res.Stats.ElementsAdded != 0 || res.Stats.ElementsDeleted != 0 || res.Stats.StaleChains != 0 {
				t.Errorf("takeover wrote %d element additions, %d deletions and flushed %d stale chains, want none:\n%s",
					res.Stats.ElementsAdded, res.Stats.ElementsDeleted, res.Stats.StaleChains, res.Transaction)
			}
			got := nftIn(t, ns, "list", "table", nftFamily, nftables.TableName)
			if diff := cmp.Diff(canonical(t, string(kubeProxy)), canonical(t, got)); diff != "" {
				t.Errorf("the table changed when Switchyard took over (-kube-proxy +switchyard):\n%s", diff)
			}
		})
	}
}

func canonical(t *testing.T, listing string) string {
	t.Helper()
	rs, err := nftmodel.Parse(listing)
	if err != nil {
		t.Fatalf("parsing a listing: %v\n%s", err, listing)
	}
	return nftmodel.Canonical(rs)
}
