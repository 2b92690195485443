package e2e

// IP plan (docs/testbed.md): node-i is 10.250.0.(10+i) / fd00:250::(10+i) on
// the cluster segment and 10.251.0.(10+i) on the outside segment; pods of
// node-i are 10.244.i.(j+1) / fd00:244:i::(j+1); services 10.96.0.0/16 and
// fd00:96::/112; the outside client is 10.251.0.100. External and
// load-balancer IPs are in 10.252.0.0/24, routed from the outside client to
// node-1 (to node-3 while the differential test compares the two): .10 the
// external IP, .20 the load-balancer IP of the externalTrafficPolicy Local
// service, .30 and .31 those whose source ranges admit and refuse the
// outside client, .40 the external IP of the service the delete test
// removes. Node ports: 30080 (policy Cluster), 30081 (policy Local).
// Switchyards run as the ServiceAccount of manifests/deploy (the
// restricted kubeconfig), with --min-sync-period 100ms.
//
//	node-1  switchyard      pods a1 a2
//	node-2  switchyard      pods b1 b2 b3
//	node-3  kube-proxy      pods c1 c2    (twin of node-1 for the differential test)
//	node-4  kube-proxy, then switchyard   (adoption)
//	node-5  switchyard started during an apiserver outage (health before first sync)

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// syncWait bounds how long one change may take to reach the traffic: a sync
// is at most --min-sync-period (100ms) plus one iptables-restore away.
const syncWait = 5 * time.Second

const (
	externalIP    = "10.252.0.10"
	localLBIP     = "10.252.0.20"
	allowLBIP     = "10.252.0.30"
	denyLBIP      = "10.252.0.31"
	nodePort      = 30080
	localNodePort = 30081
	affinitySecs  = 5
)

// TestIPTables runs the whole iptables-mode suite once per iptables backend,
// each on its own control plane shared by all of that backend's subtests.
func TestIPTables(t *testing.T) {
	testbed.Require(t)
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			start := time.Now()
			testIPTables(t, backend)
			t.Logf("backend %s: %s", backend, time.Since(start).Round(time.Second))
		})
	}
}

// suite is the shared fixture of one backend's run.
type suite struct {
	cluster                    *testbed.Cluster
	node1, node2, node3, node4 *testbed.Node
	node5                      *testbed.Node
	a1, a2, b1, b2, b3, c1, c2 *testbed.Pod
	sy1, sy2                   *testbed.Switchyard
	kp3                        *testbed.KubeProxy // kube-proxy v1.37.2 on node-3, the peer of differential tests
	services                   map[string]*v1.Service
}

func (s *suite) svc(name string) *v1.Service { return s.services[name] }

// addr is the cluster IP (family 0 or 1) and first port of a service.
func (s *suite) addr(name string, family int) string {
	svc := s.services[name]
	return hostPort(svc.Spec.ClusterIPs[family], int(svc.Spec.Ports[0].Port))
}

func testIPTables(t *testing.T, backend string) {
	s := &suite{services: map[string]*v1.Service{}}
	s.cluster = testbed.StartControlPlane(t, testbed.WithIPTablesBackend(backend))
	c := s.cluster
	s.node1 = c.AddNode(t, "node-1", map[string]string{v1.LabelTopologyZone: "zone-a"})
	s.node2 = c.AddNode(t, "node-2", map[string]string{v1.LabelTopologyZone: "zone-b"})
	s.node3 = c.AddNode(t, "node-3", map[string]string{v1.LabelTopologyZone: "zone-a"})
	s.node4 = c.AddNode(t, "node-4", map[string]string{v1.LabelTopologyZone: "zone-b"})
	s.node5 = c.AddNode(t, "node-5", map[string]string{v1.LabelTopologyZone: "zone-b"})
	s.a1, s.a2 = c.AddPod(t, s.node1, "a1"), c.AddPod(t, s.node1, "a2")
	s.b1, s.b2, s.b3 = c.AddPod(t, s.node2, "b1"), c.AddPod(t, s.node2, "b2"), c.AddPod(t, s.node2, "b3")
	s.c1, s.c2 = c.AddPod(t, s.node3, "c1"), c.AddPod(t, s.node3, "c2")
	s.createServices(t)
	c.RouteFromOutside(t, testbed.ExternalCIDR, s.node1)

	// The RBAC subtest runs first: every Switchyard of the suite then uses
	// the restricted identity, which has only what manifests/deploy grants.
	if !t.Run("RBAC manifests", s.testRBAC) {
		t.FailNow()
	}
	// node-1 and node-2 run Switchyard as kubeadm runs kube-proxy (a kube-proxy
	// link, --config written by kube-proxy itself, --hostname-override); node-4
	// and node-5 use Switchyard's flags.
	s.sy1 = c.AddSwitchyard(t, s.node1, testbed.SwitchyardOptions{AsKubeProxy: true})
	s.sy2 = c.AddSwitchyard(t, s.node2, testbed.SwitchyardOptions{AsKubeProxy: true})
	s.kp3 = c.AddKubeProxy(t, s.node3, "iptables")

	t.Run("rules are in the chosen backend", func(t *testing.T) { s.testBackend(t, backend) })
	t.Run("reachability", s.testReachability)
	t.Run("source ranges", s.testSourceRanges)
	t.Run("external traffic policy Local", s.testExternalLocal)
	t.Run("internal traffic policy Local", s.testInternalLocal)
	t.Run("session affinity", s.testAffinity)
	t.Run("balancing", s.testBalancing)
	t.Run("no endpoints is refused at once", s.testNoEndpoints)
	t.Run("hairpin", s.testHairpin)
	t.Run("endpoint changes", s.testEndpointChanges)
	t.Run("UDP flows leave a removed endpoint", s.testUDPConntrack)
	t.Run("delete service removes its rules", s.testDeleteService)
	t.Run("metrics", s.testMetrics)
	t.Run("metrics match kube-proxy", s.testMetricsMatchKubeProxy)
	t.Run("differential against kube-proxy", s.testDifferential)
	t.Run("dry-run --diff", func(t *testing.T) { s.testDryRunDiff(t, backend) })
	t.Run("flushed tables are rebuilt", s.testFlushRecovery)
	t.Run("restart under load", s.testRestartUnderLoad)
	// Before the outage: a kube-apiserver just restarted may refuse a
	// re-watch for a moment while its RBAC caches fill, which says nothing
	// about the manifests.
	t.Run("the ServiceAccount is allowed all it does", s.testNoDenials)
	t.Run("nftables mode's API calls", s.testNFTablesAPICalls)
	t.Run("least privilege", s.testLeastPrivilege)
	t.Run("apiserver outage", s.testAPIServerOutage)
	t.Run("adoption from kube-proxy", s.testAdoption)
	t.Run("datapath", s.testDatapath)
	t.Run("state dump", s.testStateDump)
	t.Run("unprivileged", func(t *testing.T) { s.testUnprivileged(t, backend) })
	// Last: it ends node-2's Switchyard.
	t.Run("a changed config file ends the process", s.testConfigChangeExits)
}

// createServices creates the shared Services and publishes their endpoints.
func (s *suite) createServices(t *testing.T) {
	ctx := t.Context()
	dualStack := ptr.To(v1.IPFamilyPolicyRequireDualStack)
	loadBalancer := func(svc *v1.Service, ip string) {
		svc.Spec.Type = v1.ServiceTypeLoadBalancer
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}}
	}
	for _, tc := range []struct {
		svc  *v1.Service
		pods []*testbed.Pod
	}{
		{makeService("web", func(svc *v1.Service) {
			svc.Spec.IPFamilyPolicy = dualStack
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80), udpPort("dns", 53, 53)}
		}), []*testbed.Pod{s.b1, s.b2, s.b3}},
		{makeService("nodeport", func(svc *v1.Service) {
			svc.Spec.Type = v1.ServiceTypeNodePort
			port := tcpPort("http", 8080, 8080)
			port.NodePort = nodePort
			svc.Spec.Ports = []v1.ServicePort{port}
		}), []*testbed.Pod{s.a1, s.b1, s.c1}},
		{makeService("local", func(svc *v1.Service) {
			loadBalancer(svc, localLBIP)
			svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			port := tcpPort("http", 80, 9376)
			port.NodePort = localNodePort
			svc.Spec.Ports = []v1.ServicePort{port}
		}), []*testbed.Pod{s.a1, s.b1, s.c1}},
		{makeService("internal-local", func(svc *v1.Service) {
			svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		}), []*testbed.Pod{s.a2, s.b2, s.c2}},
		{makeService("external", func(svc *v1.Service) {
			svc.Spec.ExternalIPs = []string{externalIP}
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 9376)}
		}), []*testbed.Pod{s.b1}},
		{makeService("lb-allow", func(svc *v1.Service) {
			loadBalancer(svc, allowLBIP)
			svc.Spec.LoadBalancerSourceRanges = []string{testbed.OutsideIP + "/32"}
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		}), []*testbed.Pod{s.b2}},
		{makeService("lb-deny", func(svc *v1.Service) {
			loadBalancer(svc, denyLBIP)
			svc.Spec.LoadBalancerSourceRanges = []string{"10.99.0.0/16"}
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		}), []*testbed.Pod{s.b2}},
		{makeService("affinity", func(svc *v1.Service) {
			svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](affinitySecs)}}
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		}), []*testbed.Pod{s.a1, s.a2, s.b1, s.b2, s.b3}},
		{makeService("scale", func(svc *v1.Service) {
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		}), []*testbed.Pod{s.b1}},
		{makeService("empty", func(svc *v1.Service) {
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80), udpPort("dns", 53, 53)}
		}), nil},
		// Local internal policy keeps a1's traffic on a1 while the
		// endpoints stay symmetric between node-1 and node-3 for the
		// differential test.
		{makeService("hairpin", func(svc *v1.Service) {
			svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		}), []*testbed.Pod{s.a1, s.c1}},
	} {
		created := s.createService(t, tc.svc)
		if err := s.cluster.PublishEndpoints(ctx, created, ready(tc.pods...)); err != nil {
			t.Fatal(err)
		}
	}
}

// createService creates svc, sets its load-balancer status through the
// status subresource (as a cloud controller would) and records it.
func (s *suite) createService(t *testing.T, svc *v1.Service) *v1.Service {
	t.Helper()
	ctx := t.Context()
	ingress := svc.Status.LoadBalancer.Ingress
	created, err := s.cluster.CreateService(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(ingress) > 0 {
		created.Status.LoadBalancer.Ingress = ingress
		if created, err = s.cluster.Clientset.CoreV1().Services(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("setting load-balancer status of %s: %v", svc.Name, err)
		}
	}
	s.services[svc.Name] = created
	return created
}

// testRBAC applies manifests/deploy/*.yaml with server-side validation
// (a server-side dry run first, then the real apply, both with strict field
// validation) and checks the restricted identity — the DaemonSet's
// ServiceAccount — gets exactly the reads Switchyard needs. That Switchyard
// then programs rules with it is what every later subtest shows.
func (s *suite) testRBAC(t *testing.T) {
	ctx := t.Context()
	restricted, err := s.cluster.ClientsetFor(s.cluster.RestrictedKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restricted.CoreV1().Services("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("before the manifests, listing Services as %s: %v, want forbidden", s.cluster.RestrictedUser, err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, name := range []string{"rbac.yaml", "configmap.yaml", "daemonset.yaml"} {
		files = append(files, "-f", filepath.Join(root, "manifests", "deploy", name))
	}
	for _, dryRun := range []string{"--dry-run=server", "--dry-run=none"} {
		args := append([]string{"apply", "--server-side", "--field-manager=switchyard-e2e", "--validate=strict", dryRun}, files...)
		if output, err := s.cluster.Kubectl(ctx, args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, output)
		}
	}
	if _, err := s.cluster.Clientset.AppsV1().DaemonSets("kube-system").Get(ctx, "switchyard", metav1.GetOptions{}); err != nil {
		t.Errorf("the DaemonSet was not stored: %v", err)
	}
	// RBAC takes effect through the apiserver's informers: wait, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errServices := restricted.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		_, errSlices := restricted.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
		_, errNodes := restricted.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err := errors.Join(errServices, errSlices, errNodes); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after the manifests, %s still cannot read what Switchyard watches: %v", s.cluster.RestrictedUser, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := restricted.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets as %s: %v, want forbidden (least privilege)", s.cluster.RestrictedUser, err)
	}
}

// trafficCase: connections from a client to an address are answered by
// exactly wantPods; with wantSource set, every pod saw that source IP; with
// masqueraded, none saw the client's own address.
type trafficCase struct {
	name        string
	from        testbed.Client
	clientIP    string
	proto, addr string
	wantPods    []string
	wantSource  string
	masquerade  bool
}

func (s *suite) runTraffic(t *testing.T, cases []trafficCase) {
	ctx := t.Context()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// 30 connections: the chance that one of three equally likely
			// endpoints never answers is 3·(2/3)^30 < 10^-5.
			counts, err := testbed.Distribution(ctx, tc.from, tc.proto, tc.addr, 30)
			if err != nil {
				t.Fatalf("%v (answered so far: %v)", err, counts)
			}
			if got := keys(counts); !slices.Equal(got, tc.wantPods) {
				t.Errorf("%s %s from %s answered by %v, want exactly %v", tc.proto, tc.addr, tc.from, counts, tc.wantPods)
			}
			if tc.wantSource == "" && !tc.masquerade {
				return
			}
			reply, err := testbed.Dial(ctx, tc.from, tc.proto, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantSource != "" && reply.SourceIP() != tc.wantSource {
				t.Errorf("%s saw source %s, want %s", reply.Pod, reply.Source, tc.wantSource)
			}
			if tc.masquerade && reply.SourceIP() == tc.clientIP {
				t.Errorf("%s saw the client's own address %s, want it masqueraded", reply.Pod, reply.Source)
			}
		})
	}
}

// testReachability: cluster IPs from the node and from a pod (TCP, UDP,
// IPv6 of a dual-stack service), and NodePort, external IP and
// load-balancer IP from the outside client.
func (s *suite) testReachability(t *testing.T) {
	out := s.cluster.Outside
	web := names(s.b1, s.b2, s.b3)
	s.runTraffic(t, []trafficCase{
		{name: "cluster IP from node", from: s.node1, proto: "tcp", addr: s.addr("web", 0), wantPods: web},
		{name: "cluster IP from pod keeps the pod's source", from: s.a1, proto: "tcp", addr: s.addr("web", 0), wantPods: web, wantSource: s.a1.IP},
		{name: "UDP cluster IP from node", from: s.node1, proto: "udp", addr: hostPort(s.svc("web").Spec.ClusterIPs[0], 53), wantPods: web},
		{name: "UDP cluster IP from pod", from: s.a2, proto: "udp", addr: hostPort(s.svc("web").Spec.ClusterIPs[0], 53), wantPods: web, wantSource: s.a2.IP},
		{name: "IPv6 cluster IP from pod", from: s.a1, proto: "tcp", addr: s.addr("web", 1), wantPods: web, wantSource: s.a1.IPv6},
		{name: "IPv6 cluster IP from node", from: s.node1, proto: "tcp", addr: s.addr("web", 1), wantPods: web},
		{name: "IPv6 UDP cluster IP from pod", from: s.a1, proto: "udp", addr: hostPort(s.svc("web").Spec.ClusterIPs[1], 53), wantPods: web},
		{name: "node port from outside", from: out, clientIP: out.IP, proto: "tcp", addr: hostPort(s.node1.IP, nodePort), wantPods: names(s.a1, s.b1, s.c1), masquerade: true},
		{name: "node port on the outside address", from: out, clientIP: out.IP, proto: "tcp", addr: hostPort(s.node1.OutsideIP, nodePort), wantPods: names(s.a1, s.b1, s.c1), masquerade: true},
		{name: "node port from pod", from: s.a2, proto: "tcp", addr: hostPort(s.node1.IP, nodePort), wantPods: names(s.a1, s.b1, s.c1)},
		{name: "external IP from outside", from: out, clientIP: out.IP, proto: "tcp", addr: hostPort(externalIP, 80), wantPods: names(s.b1), masquerade: true},
		{name: "external IP from node", from: s.node1, proto: "tcp", addr: hostPort(externalIP, 80), wantPods: names(s.b1)},
		{name: "load-balancer IP from outside", from: out, clientIP: out.IP, proto: "tcp", addr: hostPort(allowLBIP, 80), wantPods: names(s.b2), masquerade: true},
	})
}

// testSourceRanges: loadBalancerSourceRanges admit the outside client when
// it is in range and drop it otherwise (kube-proxy DROPs: a timeout).
func (s *suite) testSourceRanges(t *testing.T) {
	ctx := t.Context()
	if err := waitForPods(ctx, s.cluster.Outside, "tcp", hostPort(allowLBIP, 80), names(s.b2), syncWait); err != nil {
		t.Errorf("in range: %v", err)
	}
	if reply, err := s.cluster.OutsideDial(ctx, "tcp", hostPort(denyLBIP, 80)); !errors.Is(err, testbed.ErrTimeout) {
		t.Errorf("out of range: got reply %+v, error %v; want the connection dropped (timeout)", reply, err)
	}
	// The source ranges guard the load-balancer IP only: the cluster IP of
	// the same service stays open to pods.
	if err := waitForPods(ctx, s.a1, "tcp", s.addr("lb-deny", 0), names(s.b2), syncWait); err != nil {
		t.Errorf("cluster IP of the guarded service: %v", err)
	}
}

// testExternalLocal: with externalTrafficPolicy Local, external traffic
// reaches only the node's own endpoints and they see the client's address.
func (s *suite) testExternalLocal(t *testing.T) {
	out := s.cluster.Outside
	s.runTraffic(t, []trafficCase{
		{name: "node port via node-1", from: out, proto: "tcp", addr: hostPort(s.node1.IP, localNodePort), wantPods: names(s.a1), wantSource: out.IP},
		{name: "node port via node-2", from: out, proto: "tcp", addr: hostPort(s.node2.IP, localNodePort), wantPods: names(s.b1), wantSource: out.IP},
		{name: "load-balancer IP via node-1", from: out, proto: "tcp", addr: hostPort(localLBIP, 80), wantPods: names(s.a1), wantSource: out.IP},
		// Pods and the node itself are short-circuited to every endpoint.
		{name: "cluster IP from node", from: s.node1, proto: "tcp", addr: s.addr("local", 0), wantPods: names(s.a1, s.b1, s.c1)},
		{name: "load-balancer IP from pod", from: s.a2, proto: "tcp", addr: hostPort(localLBIP, 80), wantPods: names(s.a1, s.b1, s.c1)},
	})
}

// testInternalLocal: with internalTrafficPolicy Local, in-cluster traffic
// reaches only the endpoints on the client's node.
func (s *suite) testInternalLocal(t *testing.T) {
	s.runTraffic(t, []trafficCase{
		{name: "from node-1", from: s.node1, proto: "tcp", addr: s.addr("internal-local", 0), wantPods: names(s.a2)},
		{name: "from a pod on node-1", from: s.a1, proto: "tcp", addr: s.addr("internal-local", 0), wantPods: names(s.a2)},
		{name: "from node-2", from: s.node2, proto: "tcp", addr: s.addr("internal-local", 0), wantPods: names(s.b2)},
	})
}

// testAffinity: ClientIP affinity sends every connection of a client to one
// pod while it keeps coming back within the timeout, and lets go once the
// client has been idle longer than the timeout.
func (s *suite) testAffinity(t *testing.T) {
	ctx := t.Context()
	addr := s.addr("affinity", 0)
	counts, err := testbed.Distribution(ctx, s.node1, "tcp", addr, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 1 {
		t.Fatalf("30 connections from node-1 answered by %v, want a single pod", counts)
	}
	sticky := keys(counts)[0]
	// Expiry: after an idle period longer than the timeout the next
	// connection is balanced afresh. With 5 endpoints a fresh choice
	// repeats the old pod with probability 1/5, so up to 6 idle periods
	// tell expiry from stickiness with certainty 1 - 5^-6.
	seen := map[string]bool{sticky: true}
	for attempt := 1; attempt <= 6 && len(seen) == 1; attempt++ {
		time.Sleep((affinitySecs + 1) * time.Second)
		reply, err := testbed.Dial(ctx, s.node1, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		seen[reply.Pod] = true
		// Within the timeout it still sticks to the new choice.
		again, err := testbed.Distribution(ctx, s.node1, "tcp", addr, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(again); !slices.Equal(got, []string{reply.Pod}) {
			t.Fatalf("after re-balancing to %s, 10 connections answered by %v", reply.Pod, again)
		}
	}
	if len(seen) == 1 {
		t.Errorf("after 6 idle periods of %ds the client still always reached %s: affinity does not expire", affinitySecs+1, sticky)
	}
	// Another client (a pod) is balanced independently: it also sticks.
	podCounts, err := testbed.Distribution(ctx, s.a1, "tcp", addr, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(podCounts) != 1 {
		t.Errorf("20 connections from pod a1 answered by %v, want a single pod", podCounts)
	}
}

// testBalancing: 1200 connections to the 3 pods of web pass a chi-square
// goodness-of-fit test against equal shares.
//
// The statistic is sum((observed-400)^2/400) over the 3 pods, with 2 degrees of
// freedom; the test fails above 27.63, where a chi-square(2) variable's survival
// function exp(-x/2) is 1e-6: a correct proxy fails it once in a million runs.
// Against kube-proxy's rule broken from 1/(n-i) to 1/n (shares 1/3, 2/9, 4/9 in
// chain order) the statistic is noncentral chi-square(2) with noncentrality
// 1200*3*((1/9)^2+(1/9)^2) = 88.9, mean 90.9: the test fails with probability
// 0.99999 (it misses 1.1e-5 of the time; at 300 connections it would catch the
// mutation only 33% of the time, and the former check, each pod >= 50 of 300,
// essentially never). TestEndpointSelectionProbabilities in pkg/iptables pins the
// exact probabilities; this checks that the kernel, not only the model, spreads
// connections that way.
//
// mutation-checked on the testbed (nft): with the 1/n rule the counts were
// b1:418 b2:264 b3:518, chi-square 81.86, and the test failed; with 1/(n-i),
// 397/404/399, chi-square 0.07.
func (s *suite) testBalancing(t *testing.T) {
	const connections, threshold = 1200, 27.63
	counts, err := testbed.Distribution(t.Context(), s.node1, "tcp", s.addr("web", 0), connections)
	if err != nil {
		t.Fatal(err)
	}
	pods := names(s.b1, s.b2, s.b3)
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != connections {
		t.Fatalf("%d of %d connections answered (%v)", total, connections, counts)
	}
	expected := float64(connections) / float64(len(pods))
	chiSquare := 0.0
	for _, pod := range pods {
		d := float64(counts[pod]) - expected
		chiSquare += d * d / expected
	}
	t.Logf("counts %v: chi-square %.2f (2 degrees of freedom, fails above %.2f)", counts, chiSquare, threshold)
	if chiSquare > threshold {
		t.Errorf("connections are not spread evenly over %v: %v, chi-square %.2f > %.2f (p < 1e-6)", pods, counts, chiSquare, threshold)
	}
}

// testNoEndpoints: a service without endpoints is rejected at once (TCP
// reset, ICMP port unreachable for UDP), not left to time out.
func (s *suite) testNoEndpoints(t *testing.T) {
	ctx := t.Context()
	empty := s.svc("empty")
	for _, tc := range []struct {
		from  testbed.Client
		proto string
		port  int
	}{{s.node1, "tcp", 80}, {s.a1, "tcp", 80}, {s.node1, "udp", 53}, {s.a1, "udp", 53}} {
		start := time.Now()
		_, err := testbed.Dial(ctx, tc.from, tc.proto, hostPort(empty.Spec.ClusterIP, tc.port))
		elapsed := time.Since(start)
		if !errors.Is(err, testbed.ErrRefused) {
			t.Errorf("%s from %s: %v, want refused", tc.proto, tc.from, err)
		}
		// The dial includes starting a client process; a timeout would take
		// testbed.DialTimeout (2 s).
		if elapsed > time.Second {
			t.Errorf("%s from %s took %s to fail, want an immediate refusal", tc.proto, tc.from, elapsed)
		}
	}
}

// testHairpin: a pod reaches itself through its own service; the reply
// must be masqueraded, or the pod would answer itself directly and the
// connection would never complete.
func (s *suite) testHairpin(t *testing.T) {
	ctx := t.Context()
	for range 5 {
		reply, err := testbed.Dial(ctx, s.a1, "tcp", s.addr("hairpin", 0))
		if err != nil {
			t.Fatal(err)
		}
		if reply.Pod != s.a1.Name {
			t.Fatalf("answered by %s, want %s itself", reply.Pod, s.a1.Name)
		}
		if reply.SourceIP() == s.a1.IP {
			t.Fatalf("%s saw its own address %s, want it masqueraded", reply.Pod, reply.Source)
		}
	}
}

// testEndpointChanges: scaling up and down, readiness flips and
// terminating endpoints move traffic within one sync.
func (s *suite) testEndpointChanges(t *testing.T) {
	ctx := t.Context()
	svc := s.svc("scale")
	addr := s.addr("scale", 0)
	steps := []struct {
		name      string
		endpoints []testbed.EndpointSpec
		want      []string // nil: refused
	}{
		{"one pod", ready(s.b1), names(s.b1)},
		{"scale up", ready(s.b1, s.b2, s.b3), names(s.b1, s.b2, s.b3)},
		{"scale down", ready(s.b2), names(s.b2)},
		{"readiness flips", []testbed.EndpointSpec{{Pod: s.b2, NotServing: true}, {Pod: s.b3}}, names(s.b3)},
		{"ready again", ready(s.b2, s.b3), names(s.b2, s.b3)},
		{"ready pods win over terminating ones",
			[]testbed.EndpointSpec{{Pod: s.b1, Terminating: true}, {Pod: s.b2}}, names(s.b2)},
		{"terminating fallback when none is ready",
			[]testbed.EndpointSpec{{Pod: s.b1, Terminating: true}, {Pod: s.b3, Terminating: true, NotServing: true}}, names(s.b1)},
		{"a local pod", ready(s.a2), names(s.a2)},
		{"scale to zero", nil, nil},
		{"back from zero", ready(s.b3), names(s.b3)},
	}
	for _, step := range steps {
		if err := s.cluster.PublishEndpoints(ctx, svc, step.endpoints); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var err error
		if step.want == nil {
			err = waitForRefused(ctx, s.node1, "tcp", addr, syncWait)
		} else {
			err = waitForPods(ctx, s.node1, "tcp", addr, step.want, syncWait)
		}
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		t.Logf("%s: traffic moved within %s", step.name, time.Since(start).Round(time.Millisecond))
	}
}

// testDeleteService: after a Service is deleted no chain, rule or comment
// of it is left in any table of either family.
func (s *suite) testDeleteService(t *testing.T) {
	ctx := t.Context()
	svc := s.createService(t, makeService("doomed", func(svc *v1.Service) {
		svc.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
		svc.Spec.Type = v1.ServiceTypeNodePort
		svc.Spec.ExternalIPs = []string{"10.252.0.40"}
		svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80), udpPort("dns", 53, 53)}
	}))
	if err := s.cluster.PublishEndpoints(ctx, svc, ready(s.a2, s.b2)); err != nil {
		t.Fatal(err)
	}
	for _, family := range []int{0, 1} {
		// With affinity a client sticks to one of the two pods.
		if _, err := testbed.WaitForReply(ctx, s.node1, "tcp", s.addr("doomed", family), syncWait, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := ruleDump(ctx, t, s.node1)
	chains := map[string]bool{}
	for line := range strings.SplitSeq(before, "\n") {
		if strings.Contains(line, namespace+"/doomed") {
			for _, chain := range chainReference.FindAllString(line, -1) {
				chains[chain] = true
			}
		}
	}
	if len(chains) == 0 {
		t.Fatalf("found no chain of %s/doomed in the rules:\n%s", namespace, before)
	}
	if err := s.cluster.DeleteService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	delete(s.services, "doomed")
	if err := waitForRefusedOrGone(ctx, s.node1, s.addr2(svc, 0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(syncWait)
	for {
		after := ruleDump(ctx, t, s.node1)
		var left []string
		for line := range strings.SplitSeq(after, "\n") {
			if strings.Contains(line, namespace+"/doomed") || strings.Contains(line, svc.Spec.ClusterIPs[0]) ||
				strings.Contains(line, svc.Spec.ClusterIPs[1]) {
				left = append(left, line)
				continue
			}
			for _, chain := range chainReference.FindAllString(line, -1) {
				if chains[chain] {
					left = append(left, line)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after deleting %s/doomed, these lines of it are left:\n%s", syncWait, namespace, strings.Join(left, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *suite) addr2(svc *v1.Service, family int) string {
	return hostPort(svc.Spec.ClusterIPs[family], int(svc.Spec.Ports[0].Port))
}

// waitForRefusedOrGone waits until a deleted service's cluster IP no longer
// answers (nothing routes a bare service IP, so the dial times out).
func waitForRefusedOrGone(ctx context.Context, from testbed.Client, addr string) error {
	deadline := time.Now().Add(syncWait + testbed.DialTimeout)
	for {
		reply, err := testbed.Dial(ctx, from, "tcp", addr)
		if err != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the deleted service's %s still answers from %s (%+v)", addr, from, reply)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testMetrics: after a change, the sync and network-programming histograms
// have non-zero counts.
func (s *suite) testMetrics(t *testing.T) {
	ctx := t.Context()
	// A fresh change with a trigger time, then wait for it to be programmed.
	if err := s.cluster.PublishEndpoints(ctx, s.svc("scale"), ready(s.b1, s.b2)); err != nil {
		t.Fatal(err)
	}
	if err := waitForPods(ctx, s.node1, "tcp", s.addr("scale", 0), names(s.b1, s.b2), syncWait); err != nil {
		t.Fatal(err)
	}
	metrics, err := s.sy1.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"kubeproxy_sync_proxy_rules_duration_seconds_count",
		"kubeproxy_network_programming_duration_seconds_count",
	} {
		value, ok := metricValue(metrics, name)
		if !ok || value == 0 {
			t.Errorf("%s = %v (present %v), want > 0", name, value, ok)
		}
	}
}

// testDifferential: for every frontend of the shared services, the set of
// pods a client reaches through Switchyard (node-1) equals the set it
// reaches through kube-proxy (node-3), from the node, from a pod on it and
// from the outside client. Pods of the client's own node are compared by
// their position on that node (a1 ↔ c1, a2 ↔ c2).
func (s *suite) testDifferential(t *testing.T) {
	ctx := t.Context()
	type frontend struct {
		name, proto, addr string
		sticky            bool
	}
	var frontends []frontend
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for name := range s.services {
			if !yield(name) {
				return
			}
		}
	}) {
		svc := s.services[name]
		sticky := svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP
		for _, port := range svc.Spec.Ports {
			proto := strings.ToLower(string(port.Protocol))
			for _, ip := range svc.Spec.ClusterIPs {
				frontends = append(frontends, frontend{fmt.Sprintf("%s cluster IP %s", name, ip), proto, hostPort(ip, int(port.Port)), sticky})
			}
			for _, ip := range svc.Spec.ExternalIPs {
				frontends = append(frontends, frontend{name + " external IP", proto, hostPort(ip, int(port.Port)), sticky})
			}
			for _, ingress := range svc.Status.LoadBalancer.Ingress {
				frontends = append(frontends, frontend{name + " load-balancer IP", proto, hostPort(ingress.IP, int(port.Port)), sticky})
			}
		}
	}
	type twin struct {
		node  *testbed.Node
		pod   *testbed.Pod
		local map[string]string
	}
	switchyard := twin{s.node1, s.a1, map[string]string{"a1": "local-1", "a2": "local-2", "c1": "twin-1", "c2": "twin-2"}}
	kubeProxy := twin{s.node3, s.c1, map[string]string{"c1": "local-1", "c2": "local-2", "a1": "twin-1", "a2": "twin-2"}}
	results := func(tw twin) map[string]string {
		// External and load-balancer IPs are routed to the node under test.
		s.cluster.RouteFromOutside(t, testbed.ExternalCIDR, tw.node)
		got := map[string]string{}
		for _, f := range frontends {
			got[f.name+" from node"] = outcome(ctx, tw.node, f.proto, f.addr, tw.local, f.sticky)
			got[f.name+" from pod"] = outcome(ctx, tw.pod, f.proto, f.addr, tw.local, f.sticky)
			if !strings.Contains(f.name, "cluster IP") {
				got[f.name+" from outside"] = outcome(ctx, s.cluster.Outside, f.proto, f.addr, tw.local, f.sticky)
			}
		}
		for _, port := range []int{nodePort, localNodePort} {
			for where, ip := range map[string]string{"node IP": tw.node.IP, "outside IP": tw.node.OutsideIP} {
				name := fmt.Sprintf("node port %d on the %s", port, where)
				got[name+" from outside"] = outcome(ctx, s.cluster.Outside, "tcp", hostPort(ip, port), tw.local, false)
			}
		}
		return got
	}
	want := results(kubeProxy)
	got := results(switchyard)
	s.cluster.RouteFromOutside(t, testbed.ExternalCIDR, s.node1)
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for key := range want {
			if !yield(key) {
				return
			}
		}
	}) {
		if got[key] != want[key] {
			t.Errorf("%s: switchyard %q, kube-proxy %q", key, got[key], want[key])
		}
	}
	t.Logf("compared %d frontend×client outcomes", len(want))
}

// testRestartUnderLoad: a SIGTERM and restart of Switchyard under a
// continuous loop of short connections loses none of them, since the rules
// stay in place and the new process adopts them atomically.
func (s *suite) testRestartUnderLoad(t *testing.T) {
	ctx := t.Context()
	loops := []*loadLoop{
		startLoad(ctx, s.node1, "tcp", s.addr("web", 0)),
		startLoad(ctx, s.a1, "tcp", s.addr("web", 1)),
		startLoad(ctx, s.cluster.Outside, "tcp", hostPort(s.node1.IP, nodePort)),
	}
	for _, loop := range loops {
		if err := loop.waitAttempts(50, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sy1.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for _, loop := range loops {
		if err := loop.waitAttempts(50, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i, loop := range loops {
		attempts, failures := loop.finish()
		if len(failures) > 0 {
			t.Errorf("loop %d: %d failed batches of %d connections during the restart; first: %v", i, len(failures), attempts, failures[0])
		} else {
			t.Logf("loop %d: %d connections, none failed", i, attempts)
		}
	}
	// The restarted process still follows changes.
	if err := s.cluster.PublishEndpoints(ctx, s.svc("scale"), ready(s.b3)); err != nil {
		t.Fatal(err)
	}
	if err := waitForPods(ctx, s.node1, "tcp", s.addr("scale", 0), names(s.b3), syncWait); err != nil {
		t.Fatal(err)
	}
}

// testAPIServerOutage: with kube-apiserver stopped, the rules and the
// traffic stay; a Switchyard started during the outage answers /healthz 503
// (no first sync yet) and 200 once the apiserver is back and it has synced;
// the running one follows changes made after the outage.
func (s *suite) testAPIServerOutage(t *testing.T) {
	ctx := t.Context()
	// kube-apiserver removes itself from the default/kubernetes
	// EndpointSlice when it shuts down, so that Service's chains may
	// rightly go; every other chain must stay.
	beforeDump := ruleDump(ctx, t, s.node1)
	apiChains := chainsOf(beforeDump, "default/kubernetes")
	before := slices.DeleteFunc(kubeChains(beforeDump), apiChains)
	loop := startLoad(ctx, s.node1, "tcp", s.addr("web", 0))
	s.cluster.StopAPIServer(t)
	restarted := false
	defer func() {
		if !restarted {
			s.cluster.StartAPIServer(t)
		}
	}()
	late := s.cluster.AddSwitchyard(t, s.node5, testbed.SwitchyardOptions{NoWait: true})
	// Hold the outage for a while: informers retry and back off, and the
	// health timeout must not make anyone flush rules.
	outageEnd := time.Now().Add(5 * time.Second)
	sawHealthz := false
	for time.Now().Before(outageEnd) {
		// The synced proxy has nothing pending, so it stays healthy, as
		// kube-proxy does: a control-plane outage must not make every
		// node's proxy look broken.
		if status, body, err := s.sy1.Healthz(ctx); err != nil || status != http.StatusOK {
			t.Errorf("/healthz of the synced switchyard on node-1 during the outage: %d %q %v, want 200", status, body, err)
			break
		}
		status, body, err := late.Healthz(ctx)
		if err == nil {
			sawHealthz = true
			if status != http.StatusServiceUnavailable {
				t.Errorf("/healthz of a switchyard that never synced answered %d %q, want 503", status, body)
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !sawHealthz {
		t.Errorf("/healthz of switchyard on node-5 never answered during the outage; log:\n%s", late.Process.Tail(20))
	}
	if exited, err := s.sy1.Process.Exited(); exited {
		t.Fatalf("switchyard on node-1 exited during the outage: %v\n%s", err, s.sy1.Process.Tail(20))
	}
	if err := loop.waitAttempts(50, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	attempts, failures := loop.finish()
	if len(failures) > 0 {
		t.Errorf("%d failed batches of %d connections during the outage; first: %v", len(failures), attempts, failures[0])
	}
	if after := slices.DeleteFunc(kubeChains(ruleDump(ctx, t, s.node1)), apiChains); !slices.Equal(before, after) {
		t.Errorf("the chains changed during the outage: gone %v, new %v", minus(before, after), minus(after, before))
	}

	s.cluster.StartAPIServer(t)
	restarted = true
	if err := late.WaitHealthy(ctx, 60*time.Second); err != nil {
		t.Errorf("switchyard started during the outage: %v", err)
	}
	if err := waitForPods(ctx, s.node5, "tcp", s.addr("web", 0), names(s.b1, s.b2, s.b3), syncWait); err != nil {
		t.Errorf("from node-5: %v", err)
	}
	// Watches resume: a change after the outage is programmed.
	if err := s.cluster.PublishEndpoints(ctx, s.svc("scale"), ready(s.b1)); err != nil {
		t.Fatal(err)
	}
	// The informers' reconnect backs off for up to a few seconds.
	if err := waitForPods(ctx, s.node1, "tcp", s.addr("scale", 0), names(s.b1), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// testAdoption: kube-proxy programs node-4; it is stopped and Switchyard
// started in its place while clients keep connecting: no connection fails,
// and afterwards no chain is left that Switchyard would not have made:
// node-4's chains equal those of node-5 (same zone, no pods, only ever
// programmed by Switchyard), including none of a service deleted while no
// proxy ran. KUBE-FIREWALL is left out: it is kubelet's chain, which
// kube-proxy also writes to, and Switchyard leaves it alone by design.
func (s *suite) testAdoption(t *testing.T) {
	ctx := t.Context()
	gone := s.createService(t, makeService("gone", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	if err := s.cluster.PublishEndpoints(ctx, gone, ready(s.b3)); err != nil {
		t.Fatal(err)
	}
	kubeProxy := s.cluster.AddKubeProxy(t, s.node4, "iptables")
	if err := waitForPods(ctx, s.node4, "tcp", s.addr("gone", 0), names(s.b3), syncWait); err != nil {
		t.Fatal(err)
	}
	loops := []*loadLoop{
		startLoad(ctx, s.node4, "tcp", s.addr("web", 0)),
		startLoad(ctx, s.node4, "tcp", s.addr("web", 1)),
		startLoad(ctx, s.cluster.Outside, "tcp", hostPort(s.node4.IP, nodePort)),
	}
	for _, loop := range loops {
		if err := loop.waitAttempts(50, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := kubeProxy.Process.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.cluster.DeleteService(ctx, gone); err != nil {
		t.Fatal(err)
	}
	delete(s.services, "gone")
	proxy := s.cluster.AddSwitchyard(t, s.node4, testbed.SwitchyardOptions{})
	for _, loop := range loops {
		if err := loop.waitAttempts(50, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i, loop := range loops {
		attempts, failures := loop.finish()
		if len(failures) > 0 {
			t.Errorf("loop %d: %d failed batches of %d connections during the switch; first: %v", i, len(failures), attempts, failures[0])
		}
	}
	if err := waitForRefusedOrGone(ctx, s.node4, hostPort(gone.Spec.ClusterIP, 80)); err != nil {
		t.Error(err)
	}
	// Both nodes see the same objects; wait for both to settle on the
	// same chains (node-5 just saw "gone" come and go too).
	deadline := time.Now().Add(syncWait)
	for {
		want, got := withoutKubelet(kubeChains(ruleDump(ctx, t, s.node5))), withoutKubelet(kubeChains(ruleDump(ctx, t, s.node4)))
		if slices.Equal(want, got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after adoption node-4's chains differ from node-5's (switchyard only):\nonly on node-4 (stale): %v\nonly on node-5 (missing): %v\nswitchyard log:\n%s",
				minus(got, want), minus(want, got), proxy.Process.Tail(20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if dump := ruleDump(ctx, t, s.node4); strings.Contains(dump, namespace+"/gone") {
		t.Errorf("rules of the service deleted while no proxy ran are left on node-4")
	}
}

// withoutKubelet drops kubelet's KUBE-FIREWALL chain from a chain list.
func withoutKubelet(chains []string) []string {
	return slices.DeleteFunc(chains, func(chain string) bool { return strings.HasSuffix(chain, " KUBE-FIREWALL") })
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// testBackend: Switchyard wrote its rules with the backend it was told to
// use, and nothing with the other one (a mix is what breaks nodes:
// kubernetes#71305).
func (s *suite) testBackend(t *testing.T, backend string) {
	ctx := t.Context()
	other := map[string]string{"nft": "legacy", "legacy": "nft"}[backend]
	for _, tc := range []struct {
		backend string
		want    bool
	}{{backend, true}, {other, false}} {
		for _, command := range []string{"iptables-save", "ip6tables-save"} {
			output, err := s.node1.Exec(ctx, "/usr/sbin/xtables-"+tc.backend+"-multi", command)
			if err != nil {
				t.Fatalf("%s with the %s backend: %v", command, tc.backend, err)
			}
			if got := strings.Contains(output, ":KUBE-SERVICES"); got != tc.want {
				t.Errorf("%s with the %s backend on node-1 has KUBE-SERVICES: %v, want %v", command, tc.backend, got, tc.want)
			}
		}
	}
	log, err := s.sy1.Log()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`backend=%q`, backend); !strings.Contains(log, want) {
		t.Errorf("switchyard's log never says %s", want)
	}
}

// testNoDenials: running as the DaemonSet's ServiceAccount, Switchyard is allowed
// everything it does. The apiserver is asked directly (SelfSubjectAccessReview as that
// identity), which is deterministic; a "forbidden" line in a log is only reported,
// because an apiserver under load can refuse a single re-watch while its own RBAC
// caches refresh, which says nothing about the manifests.
func (s *suite) testNoDenials(t *testing.T) {
	ctx := context.Background()
	restricted, err := s.cluster.ClientsetFor(s.cluster.RestrictedKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	needed := []authv1.ResourceAttributes{
		{Verb: "list", Resource: "services"}, {Verb: "watch", Resource: "services"},
		{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"},
		{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices"},
		{Verb: "list", Resource: "nodes"}, {Verb: "watch", Resource: "nodes"},
		{Verb: "create", Resource: "events", Namespace: "default"},
		{Verb: "patch", Resource: "events", Namespace: "default"},
	}
	for _, attrs := range needed {
		review, err := restricted.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review %+v: %v", attrs, err)
		}
		if !review.Status.Allowed {
			t.Errorf("%s may not %s %s/%s: %s", s.cluster.RestrictedUser, attrs.Verb, attrs.Group, attrs.Resource, review.Status.Reason)
		}
	}
	for _, proxy := range []*testbed.Switchyard{s.sy1, s.sy2} {
		log, err := proxy.Log()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(log, "\n") {
			if strings.Contains(line, "forbidden") || strings.Contains(line, "Forbidden") {
				t.Logf("note: %s logged a transient denial (the access reviews above are what count): %s", proxy, line)
			}
		}
	}
}

// canaryWait bounds the rebuild after a flush: Switchyard checks its canary
// chains every 10 s (kube-proxy's interval), then syncs fully at once.
const canaryWait = 20 * time.Second

// testFlushRecovery: when something else flushes and deletes every chain
// of the nat, filter and mangle tables of both families on node-2 (a
// firewall reload, say), Switchyard notices its canary chains are gone and
// rebuilds everything, hooks included, within one canary interval; later
// changes apply as usual.
func (s *suite) testFlushRecovery(t *testing.T) {
	ctx := t.Context()
	for _, command := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"nat", "filter", "mangle"} {
			for _, action := range []string{"-F", "-X"} {
				if output, err := s.node2.Exec(ctx, command, "-w", "5", "-t", table, action); err != nil {
					t.Fatalf("%s -t %s %s: %v\n%s", command, table, action, err, output)
				}
			}
		}
	}
	start := time.Now()
	web := names(s.b1, s.b2, s.b3)
	if err := waitForPods(ctx, s.node2, "tcp", s.addr("web", 0), web, canaryWait); err != nil {
		t.Fatalf("after the flush: %v\nswitchyard log:\n%s", err, s.sy2.Process.Tail(10))
	}
	t.Logf("rebuilt within %s", time.Since(start).Round(time.Millisecond))
	if err := waitForPods(ctx, s.node2, "tcp", s.addr("web", 1), web, syncWait); err != nil {
		t.Errorf("IPv6 after the flush: %v", err)
	}
	// The filter table's REJECT for services without endpoints is back.
	if err := waitForRefused(ctx, s.node2, "tcp", hostPort(s.svc("empty").Spec.ClusterIP, 80), syncWait); err != nil {
		t.Errorf("after the flush: %v", err)
	}
	if err := waitForPods(ctx, s.cluster.Outside, "tcp", hostPort(s.node2.IP, nodePort), names(s.a1, s.b1, s.c1), syncWait); err != nil {
		t.Errorf("node port via node-2 after the flush: %v", err)
	}
	if err := s.cluster.PublishEndpoints(ctx, s.svc("scale"), ready(s.b2)); err != nil {
		t.Fatal(err)
	}
	if err := waitForPods(ctx, s.node2, "tcp", s.addr("scale", 0), names(s.b2), syncWait); err != nil {
		t.Errorf("a change after the rebuild: %v", err)
	}
}

// udpAsk sends one datagram from conn to addr and returns the echo reply
// ("<pod> <source>"), waiting at most a second.
func udpAsk(conn *net.UDPConn, addr string) (string, error) {
	target, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return "", err
	}
	if _, err := conn.WriteToUDP([]byte("ping\n"), target); err != nil {
		return "", err
	}
	if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// testUDPConntrack: a UDP client that keeps one source port (one conntrack
// entry, refreshed by every datagram) moves off an endpoint within one sync
// once the endpoint is removed, although the old pod still answers: the
// proxy deletes the stale conntrack entry (kubernetes#19029, #125467).
func (s *suite) testUDPConntrack(t *testing.T) {
	ctx := t.Context()
	svc := s.createService(t, makeService("udp-flow", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{udpPort("dns", 53, 53)}
	}))
	if err := s.cluster.PublishEndpoints(ctx, svc, ready(s.b1)); err != nil {
		t.Fatal(err)
	}
	addr := hostPort(svc.Spec.ClusterIP, 53)
	if err := waitForPods(ctx, s.a1, "udp", addr, names(s.b1), syncWait); err != nil {
		t.Fatal(err)
	}
	conn, err := listenUDPIn(s.a1.Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reply, err := udpAsk(conn, addr)
	if err != nil || !strings.HasPrefix(reply, s.b1.Name+" ") {
		t.Fatalf("first datagram from %s: reply %q, error %v; want %s", conn.LocalAddr(), reply, err, s.b1.Name)
	}
	for _, step := range []struct {
		endpoints *testbed.Pod
		want      string
	}{{s.b2, s.b2.Name}, {s.b3, s.b3.Name}} {
		if err := s.cluster.PublishEndpoints(ctx, svc, ready(step.endpoints)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			reply, err = udpAsk(conn, addr)
			if err == nil && strings.HasPrefix(reply, step.want+" ") {
				t.Logf("the flow from %s moved to %s within %s", conn.LocalAddr(), step.want, time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Since(start) > syncWait {
				t.Fatalf("%s after the endpoint changed to %s, the flow from %s still gets reply %q (error %v)",
					syncWait, step.want, conn.LocalAddr(), reply, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := s.cluster.DeleteService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	delete(s.services, "udp-flow")
}
