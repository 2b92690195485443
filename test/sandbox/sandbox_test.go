// Package sandbox is `make sandbox`: a control plane, two nodes, a few pods
// and example services on the testbed, up until Ctrl-C, to try Switchyard
// (or the reference kube-proxy) by hand. It is a test binary only because
// the testbed's API takes a testing.TB; hack/sandbox.sh builds and runs it.
// Under `go test ./test/...` it skips unless SWITCHYARD_SANDBOX=1.
package sandbox

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

var (
	withKubeProxy  = flag.Bool("kube-proxy", false, "run the reference kube-proxy (iptables mode) on both nodes instead of Switchyard")
	withSwitchyard = flag.Bool("switchyard", true, "run Switchyard (built from the working tree) on both nodes, as the ServiceAccount of manifests/deploy")
)

func TestSandbox(t *testing.T) {
	if os.Getenv("SWITCHYARD_SANDBOX") != "1" {
		t.Skip("the sandbox runs only from hack/sandbox.sh (SWITCHYARD_SANDBOX=1)")
	}
	testbed.Require(t)
	ctx := t.Context()
	cluster := testbed.StartControlPlane(t)
	nodeA := cluster.AddNode(t, "node-a", map[string]string{v1.LabelTopologyZone: "zone-a"})
	nodeB := cluster.AddNode(t, "node-b", map[string]string{v1.LabelTopologyZone: "zone-b"})
	pods := []*testbed.Pod{
		cluster.AddPod(t, nodeA, "web-a1"),
		cluster.AddPod(t, nodeA, "web-a2"),
		cluster.AddPod(t, nodeB, "web-b1"),
		cluster.AddPod(t, nodeB, "web-b2"),
	}
	var endpoints []testbed.EndpointSpec
	for _, pod := range pods {
		endpoints = append(endpoints, testbed.EndpointSpec{Pod: pod})
	}
	dualStack := v1.IPFamilyPolicyPreferDualStack
	services := []*v1.Service{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "sandbox"},
			Spec: v1.ServiceSpec{IPFamilyPolicy: &dualStack, Ports: []v1.ServicePort{
				{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(80)},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "web-nodeport", Namespace: "sandbox"},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeNodePort, Ports: []v1.ServicePort{
				{Name: "http", Protocol: v1.ProtocolTCP, Port: 8080, TargetPort: intstr.FromInt32(8080), NodePort: 30080},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: "sandbox"},
			Spec: v1.ServiceSpec{Ports: []v1.ServicePort{
				{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: "sandbox"},
			Spec: v1.ServiceSpec{Ports: []v1.ServicePort{
				{Name: "http", Protocol: v1.ProtocolTCP, Port: 80},
			}},
		},
	}
	var summary strings.Builder
	for _, svc := range services {
		created, err := cluster.CreateService(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		published := endpoints
		if svc.Name == "empty" {
			published = nil
		}
		if err := cluster.PublishEndpoints(ctx, created, published); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&summary, "  %-13s %-10s clusterIPs %v ports %s\n", created.Name, created.Spec.Type,
			created.Spec.ClusterIPs, portList(created))
	}
	proxy := "none"
	switch {
	case *withKubeProxy:
		cluster.AddKubeProxy(t, nodeA, "iptables")
		cluster.AddKubeProxy(t, nodeB, "iptables")
		proxy = "kube-proxy (iptables mode)"
	case *withSwitchyard:
		// Switchyard runs with the restricted identity, which has rights
		// only once the deploy manifests' RBAC is applied, as in a cluster.
		root, err := testbed.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		if output, err := cluster.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(root, "manifests", "deploy", "rbac.yaml")); err != nil {
			t.Fatalf("applying manifests/deploy/rbac.yaml: %v\n%s", err, output)
		}
		var logs []string
		for _, node := range []*testbed.Node{nodeA, nodeB} {
			logs = append(logs, cluster.AddSwitchyard(t, node, testbed.SwitchyardOptions{}).Process.LogPath)
		}
		proxy = "switchyard (iptables mode), logs " + strings.Join(logs, " ")
	}

	echo, err := testbed.EchoBinary()
	if err != nil {
		t.Fatal(err)
	}
	webIP := ""
	if created, err := cluster.Clientset.CoreV1().Services("sandbox").Get(ctx, "web", metav1.GetOptions{}); err == nil {
		webIP = created.Spec.ClusterIP
	}
	fmt.Printf(`
Switchyard sandbox is up (cluster %[1]s). Ctrl-C tears it down.

Admin kubeconfig:      %[2]s
Restricted kubeconfig: %[3]s (user %[4]s)
API server:            %[5]s (reachable from the node and pod namespaces)
Proxy on the nodes:    %[6]s

Namespaces:
  control plane  %[7]s
  outside client %[8]s (%[9]s)
  node-a         %[10]s (%[11]s, outside %[12]s)
  node-b         %[13]s (%[14]s, outside %[15]s)
  pods           %[16]s

Services (namespace sandbox; pods answer "<pod> <source ip:port>"):
%[17]s
Try:
  ip netns exec %[10]s %[18]s --kubeconfig %[2]s get svc,endpointslices -A
  ip netns exec %[10]s %[19]s dial --addr %[20]s:80 --count 20
  ip netns exec %[8]s %[19]s dial --addr %[12]s:30080 --count 20
  ip netns exec %[10]s curl -s %[11]s:10249/metrics | grep ^kubeproxy_sync
  ip netns exec %[10]s iptables -t nat -S
`, cluster.ID, cluster.AdminKubeconfig, cluster.RestrictedKubeconfig, cluster.RestrictedUser,
		cluster.APIServerURL, proxy, cluster.Netns, cluster.Outside.Netns, cluster.Outside.IP,
		nodeA.Netns, nodeA.IP, nodeA.OutsideIP, nodeB.Netns, nodeB.IP, nodeB.OutsideIP,
		podList(pods), summary.String(), cluster.Tool("kubectl"), echo, webIP)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	fmt.Println("\nTearing the sandbox down...")
}

func portList(svc *v1.Service) string {
	var ports []string
	for _, port := range svc.Spec.Ports {
		text := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if port.NodePort != 0 {
			text += fmt.Sprintf(" (nodePort %d)", port.NodePort)
		}
		ports = append(ports, text)
	}
	return strings.Join(ports, ", ")
}

func podList(pods []*testbed.Pod) string {
	var lines []string
	for _, pod := range pods {
		lines = append(lines, fmt.Sprintf("%s %s %s", pod.Name, pod.Netns, net.JoinHostPort(pod.IP, "80")))
	}
	return strings.Join(lines, "\n                 ")
}
