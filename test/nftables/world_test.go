package nftables

// IP plan (test/testbed/doc.go): node-1 10.250.0.11 / fd00:250::11 (outside
// 10.251.0.11), node-2 10.250.0.12; pods on node-1 10.244.1.0/24, on node-2
// 10.244.2.0/24; outside client 10.251.0.100. Every Service has a fixed
// cluster IP in 10.96.1.0/24 (IPv6 fd00:96::100–1ff) and fixed node ports
// 30080–30089, so a regenerated fixture differs from the committed one only
// where kube-proxy's output changed. Load-balancer and external IPs are
// 10.252.0.10–22, routed from the outside client to node-1.

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// namespace holds every Service of the world.
const namespace = "nft"

// world is the set of Services, pods and clients every test of the package
// programs: one Service per feature of kube-proxy's nftables layout.
type world struct {
	cluster      *testbed.Cluster
	node1, node2 *testbed.Node
	// web1 and local1 run on node-1, web2 and ext1 on node-2.
	web1, local1, web2, ext1 *testbed.Pod
	services                 map[string]*v1.Service
}

// Fixed addresses of the world's external and load-balancer IPs.
const (
	externalIP = "10.252.0.10"
	lbIP       = "10.252.0.20"
	lbDeniedIP = "10.252.0.21"
	lbLocalIP  = "10.252.0.22"
)

// worldService is one Service of the world with the pods behind it.
type worldService struct {
	svc  *v1.Service
	pods func(w *world) []*testbed.Pod
}

func service(name string, ips []string, tweak func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeClusterIP,
			ClusterIP:  ips[0],
			ClusterIPs: ips,
			Ports:      []v1.ServicePort{tcpPort("http", 80, 80, 0)},
		},
	}
	if len(ips) == 2 {
		svc.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
		svc.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
	}
	if tweak != nil {
		tweak(svc)
	}
	return svc
}

func tcpPort(name string, port, target, nodePort int) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: v1.ProtocolTCP, Port: int32(port),
		TargetPort: intstr.FromInt32(int32(target)), NodePort: int32(nodePort)}
}

func loadBalancer(ingress string, sourceRanges ...string) func(*v1.Service) {
	return func(svc *v1.Service) {
		svc.Spec.Type = v1.ServiceTypeLoadBalancer
		svc.Spec.LoadBalancerSourceRanges = sourceRanges
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ingress}}
	}
}

// worldServices lists the world: every kind of Service the nftables layout
// has a rule for.
func worldServices(outsideIP string) []worldService {
	pods := func(pick func(w *world) []*testbed.Pod) func(w *world) []*testbed.Pod { return pick }
	return []worldService{
		{service("web", []string{"10.96.1.1", "fd00:96::101"}, func(svc *v1.Service) {
			svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)})
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web1, w.web2, w.ext1} })},
		{service("nodeport", []string{"10.96.1.2", "fd00:96::102"}, func(svc *v1.Service) {
			svc.Spec.Type = v1.ServiceTypeNodePort
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 8080, 8080, 30080)}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web2} })},
		{service("local", []string{"10.96.1.3"}, func(svc *v1.Service) {
			svc.Spec.Type = v1.ServiceTypeNodePort
			svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80, 30081)}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web1, w.web2} })},
		{service("local-remote", []string{"10.96.1.4"}, func(svc *v1.Service) {
			svc.Spec.Type = v1.ServiceTypeNodePort
			svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80, 30082)}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web2} })},
		{service("lb", []string{"10.96.1.5"}, func(svc *v1.Service) {
			loadBalancer(lbIP, outsideIP+"/32")(svc)
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80, 30083)}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web2} })},
		{service("lb-denied", []string{"10.96.1.6"}, func(svc *v1.Service) {
			loadBalancer(lbDeniedIP, "192.0.2.0/24")(svc)
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80, 30084)}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web2} })},
		{service("external", []string{"10.96.1.7"}, func(svc *v1.Service) {
			svc.Spec.ExternalIPs = []string{externalIP}
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 9376, 0)}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.ext1} })},
		{service("affinity", []string{"10.96.1.8", "fd00:96::108"}, func(svc *v1.Service) {
			svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60))}}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web1, w.web2} })},
		{service("itp-local", []string{"10.96.1.9"}, func(svc *v1.Service) {
			svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.web2} })},
		{service("empty", []string{"10.96.1.10", "fd00:96::10a"}, nil), nil},
		{service("empty-udp", []string{"10.96.1.11"}, func(svc *v1.Service) {
			svc.Spec.Ports = []v1.ServicePort{{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)}}
		}), nil},
		{service("empty-nodeport", []string{"10.96.1.12"}, func(svc *v1.Service) {
			svc.Spec.Type = v1.ServiceTypeNodePort
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80, 30085)}
		}), nil},
		{service("lb-local", []string{"10.96.1.13"}, func(svc *v1.Service) {
			loadBalancer(lbLocalIP)(svc)
			svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			svc.Spec.HealthCheckNodePort = 30089
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80, 30086)}
		}), pods(func(w *world) []*testbed.Pod { return []*testbed.Pod{w.local1, w.web2} })},
	}
}

// startWorld starts a control plane with two nodes and four pods and
// creates the world's Services and EndpointSlices; no proxy runs yet.
func startWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	cluster := testbed.StartControlPlane(t)
	w := &world{cluster: cluster, services: map[string]*v1.Service{}}
	w.node1 = cluster.AddNode(t, "node-1", map[string]string{v1.LabelTopologyZone: "zone-a"})
	w.node2 = cluster.AddNode(t, "node-2", map[string]string{v1.LabelTopologyZone: "zone-b"})
	w.web1 = cluster.AddPod(t, w.node1, "web-1")
	w.local1 = cluster.AddPod(t, w.node1, "local-1")
	w.web2 = cluster.AddPod(t, w.node2, "web-2")
	w.ext1 = cluster.AddPod(t, w.node2, "ext-1")
	for _, ws := range worldServices(cluster.Outside.IP) {
		created, err := createService(ctx, cluster, ws.svc)
		if err != nil {
			t.Fatal(err)
		}
		var endpoints []testbed.EndpointSpec
		if ws.pods != nil {
			for _, pod := range ws.pods(w) {
				endpoints = append(endpoints, testbed.EndpointSpec{Pod: pod})
			}
		}
		if err := cluster.PublishEndpoints(ctx, created, endpoints); err != nil {
			t.Fatal(err)
		}
		w.services[created.Name] = created
	}
	// The outside client also reaches web's cluster IP through node-1, as a
	// router with a static route to a service IP would (kube-proxy
	// masquerades such traffic).
	for _, ip := range []string{externalIP, lbIP, lbDeniedIP, lbLocalIP, "10.96.1.1"} {
		cluster.RouteFromOutside(t, ip, w.node1)
	}
	return w
}

// createService creates svc and, for a LoadBalancer, writes its ingress
// into the status, as a cloud controller would.
func createService(ctx context.Context, cluster *testbed.Cluster, svc *v1.Service) (*v1.Service, error) {
	ingress := svc.Status.LoadBalancer.Ingress
	created, err := cluster.CreateService(ctx, svc)
	if err != nil || len(ingress) == 0 {
		return created, err
	}
	created.Status.LoadBalancer.Ingress = ingress
	updated, err := cluster.Clientset.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("setting the ingress of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return updated, nil
}

// pods returns every pod of the world by its IPv4 and IPv6 address.
func (w *world) podsByIP() map[netip.Addr]*testbed.Pod {
	byIP := map[netip.Addr]*testbed.Pod{}
	for _, pod := range []*testbed.Pod{w.web1, w.local1, w.web2, w.ext1} {
		byIP[netip.MustParseAddr(pod.IP)] = pod
		byIP[netip.MustParseAddr(pod.IPv6)] = pod
	}
	return byIP
}

// nftList returns `nft list table FAMILY kube-proxy` inside node's namespace.
func nftList(ctx context.Context, node *testbed.Node, family string) (string, error) {
	return node.Exec(ctx, "nft", "list", "table", family, "kube-proxy")
}
