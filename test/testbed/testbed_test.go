package testbed_test

// IP plan (doc.go): cluster segment 10.250.0.0/24 (control plane .1, node i
// .10+i), pod CIDR of node i 10.244.i.0/24 and fd00:244:i::/64 (pod j is
// .j+1), services 10.96.0.0/16 and fd00:96::/112, outside client
// 10.251.0.100.

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// netnsWithPrefix lists the namespaces whose names start with prefix.
func netnsWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, entry := range entries {
		if strings.HasPrefix(entry.Name(), prefix) {
			names = append(names, entry.Name())
		}
	}
	return names
}

// hostLinksWithPrefix lists links in the host namespace named with the
// testbed prefix: there must never be any.
func hostLinksWithPrefix(t *testing.T) []string {
	t.Helper()
	interfaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, iface := range interfaces {
		if strings.HasPrefix(iface.Name, testbed.Prefix) {
			names = append(names, iface.Name)
		}
	}
	return names
}

// waitInNetns waits until process pid has entered netns: `ip netns exec`
// is forked in the host namespace and switches a moment later.
func waitInNetns(t *testing.T, pid int, netns string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		output, err := exec.Command("ip", "netns", "identify", strconv.Itoa(pid)).Output()
		if err != nil {
			t.Fatalf("ip netns identify %d: %v", pid, err)
		}
		if got = strings.TrimSpace(string(output)); got == netns {
			return
		}
	}
	t.Fatalf("process %d is in netns %q after 5s, want %q", pid, got, netns)
}

func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestCluster(t *testing.T) {
	testbed.Require(t)
	var (
		clusterID  string
		clusterDir string
		pids       []int
	)
	t.Run("harness", func(t *testing.T) {
		cluster := testbed.StartControlPlane(t)
		clusterID, clusterDir = cluster.ID, cluster.Dir
		nodeA := cluster.AddNode(t, "node-a", map[string]string{v1.LabelTopologyZone: "zone-a"})
		nodeB := cluster.AddNode(t, "node-b", map[string]string{v1.LabelTopologyZone: "zone-b"})
		podA := cluster.AddPod(t, nodeA, "pod-a1")
		podB := cluster.AddPod(t, nodeB, "pod-b1")
		pids = append(pids, podA.Server.Pid(), podB.Server.Pid())
		if links := hostLinksWithPrefix(t); len(links) > 0 {
			t.Errorf("links %v in the host namespace; every link must live in a testbed namespace", links)
		}
		ctx := t.Context()

		t.Run("node objects carry addresses and labels", func(t *testing.T) {
			for _, node := range []*testbed.Node{nodeA, nodeB} {
				object, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var internal []string
				for _, address := range object.Status.Addresses {
					if address.Type == v1.NodeInternalIP {
						internal = append(internal, address.Address)
					}
				}
				if want := []string{node.IP, node.IPv6}; !slices.Equal(internal, want) {
					t.Errorf("Node %s InternalIPs = %v, want %v", node.Name, internal, want)
				}
				if got, want := object.Labels[v1.LabelTopologyZone], node.Labels[v1.LabelTopologyZone]; got != want {
					t.Errorf("Node %s zone = %q, want %q", node.Name, got, want)
				}
				if want := []string{node.PodCIDR, node.PodCIDRv6}; !slices.Equal(object.Spec.PodCIDRs, want) {
					t.Errorf("Node %s podCIDRs = %v, want %v", node.Name, object.Spec.PodCIDRs, want)
				}
			}
		})

		t.Run("pods reach each other across nodes by pod IP", func(t *testing.T) {
			cases := []struct {
				name       string
				from       testbed.Client
				proto      string
				addr       string
				wantPod    string
				wantSource string
			}{
				{"tcp v4 a to b", podA, "tcp", net.JoinHostPort(podB.IP, "80"), podB.Name, podA.IP},
				{"tcp v6 a to b", podA, "tcp", net.JoinHostPort(podB.IPv6, "8080"), podB.Name, podA.IPv6},
				{"udp v4 b to a", podB, "udp", net.JoinHostPort(podA.IP, "53"), podA.Name, podB.IP},
				{"udp v6 b to a", podB, "udp", net.JoinHostPort(podA.IPv6, "53"), podA.Name, podB.IPv6},
				// From node A: the route to node B's pod CIDR goes via node
				// B's cluster-segment address, so that is the source.
				{"node a to pod b", nodeA, "tcp", net.JoinHostPort(podB.IP, "9376"), podB.Name, nodeA.IP},
				{"node b to own pod", nodeB, "tcp", net.JoinHostPort(podB.IP, "80"), podB.Name, "10.244.2.1"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					reply, err := testbed.Dial(ctx, tc.from, tc.proto, tc.addr)
					if err != nil {
						t.Fatal(err)
					}
					if reply.Pod != tc.wantPod || reply.SourceIP() != tc.wantSource {
						t.Errorf("reply %+v, want pod %s from %s", reply, tc.wantPod, tc.wantSource)
					}
				})
			}
		})

		t.Run("dial errors tell refused from timeout", func(t *testing.T) {
			// Nothing listens on 81 in the pod: the kernel answers RST.
			if _, err := podA.Dial(ctx, "tcp", net.JoinHostPort(podB.IP, "81")); !errors.Is(err, testbed.ErrRefused) {
				t.Errorf("dial to a closed TCP port: %v, want ErrRefused", err)
			}
			if _, err := podA.Dial(ctx, "udp", net.JoinHostPort(podB.IP, "54")); !errors.Is(err, testbed.ErrRefused) {
				t.Errorf("dial to a closed UDP port: %v, want ErrRefused", err)
			}
			// The outside client has no route to pods: nothing answers
			// within the network it can reach.
			if _, err := cluster.OutsideDial(ctx, "tcp", net.JoinHostPort(podA.IP, "80")); !errors.Is(err, testbed.ErrUnreachable) {
				t.Errorf("dial from outside to a pod IP: %v, want ErrUnreachable", err)
			}
		})

		t.Run("distribution counts each answering pod", func(t *testing.T) {
			counts, err := testbed.Distribution(ctx, nodeA, "tcp", net.JoinHostPort(podB.IP, "80"), 20)
			if err != nil {
				t.Fatal(err)
			}
			if counts[podB.Name] != 20 || len(counts) != 1 {
				t.Errorf("counts %v, want all 20 from %s", counts, podB.Name)
			}
		})

		t.Run("processes started on a node run in its namespace", func(t *testing.T) {
			// A stand-in for a proxy under test; left running for
			// teardown to stop.
			sleeper := nodeA.Start(t, "sleeper", "sleep", "600")
			pids = append(pids, sleeper.Pid())
			waitInNetns(t, sleeper.Pid(), nodeA.Netns)
			// Node programs see the chosen iptables backend first in PATH.
			version, err := nodeA.Exec(ctx, "iptables", "--version")
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"nft": "(nf_tables)", "legacy": "(legacy)"}[cluster.IPTablesBackend]
			if !strings.Contains(version, want) {
				t.Errorf("iptables --version = %q, want %s for backend %s", version, want, cluster.IPTablesBackend)
			}
		})

		t.Run("Cleanup leaves live clusters alone", func(t *testing.T) {
			if _, err := testbed.Cleanup(); err != nil {
				t.Fatal(err)
			}
			if _, err := podA.Dial(ctx, "tcp", net.JoinHostPort(podB.IP, "80")); err != nil {
				t.Errorf("after Cleanup: %v", err)
			}
			if left := netnsWithPrefix(t, testbed.Prefix+cluster.ID); len(left) != 6 {
				t.Errorf("after Cleanup the cluster has namespaces %v, want all 6", left)
			}
		})

		t.Run("restricted identity is refused what RBAC does not grant", func(t *testing.T) {
			restricted, err := cluster.ClientsetFor(cluster.RestrictedKubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			svc := &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe", Namespace: "default"},
				Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 80}}},
			}
			if _, err := restricted.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("restricted list secrets: %v, want Forbidden", err)
			}
			if _, err := restricted.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("restricted create service: %v, want Forbidden", err)
			}
			if _, err := restricted.CoreV1().Services("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("restricted list services (no RBAC applied yet): %v, want Forbidden", err)
			}
			if _, err := cluster.Clientset.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); err != nil {
				t.Errorf("admin list secrets: %v", err)
			}
			if _, err := cluster.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
				t.Errorf("admin create service: %v", err)
			}
		})

		t.Run("manifests RBAC grants the restricted identity what Switchyard needs", func(t *testing.T) {
			root, err := testbed.RepoRoot()
			if err != nil {
				t.Fatal(err)
			}
			rbac := filepath.Join(root, "manifests", "deploy", "rbac.yaml")
			if _, err := os.Stat(rbac); err != nil {
				t.Skipf("no RBAC manifest: %v", err)
			}
			if output, err := cluster.Kubectl(ctx, "apply", "-f", rbac); err != nil {
				t.Fatal(err)
			} else {
				t.Logf("kubectl apply: %s", strings.TrimSpace(output))
			}
			restricted, err := cluster.ClientsetFor(cluster.RestrictedKubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			// The authorizer learns of new bindings through a watch: allow
			// it a moment.
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err = restricted.CoreV1().Services("").List(ctx, metav1.ListOptions{})
				if err == nil || !apierrors.IsForbidden(err) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("restricted list services after applying %s: %v", rbac, err)
			}
			if _, err := restricted.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
				t.Errorf("restricted list endpointslices: %v", err)
			}
			if _, err := restricted.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
				t.Errorf("restricted list nodes: %v", err)
			}
			if _, err := restricted.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("restricted list secrets: %v, want Forbidden", err)
			}
		})

		t.Run("service CIDRs are dual-stack", func(t *testing.T) {
			svc, err := cluster.CreateService(ctx, &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "dual", Namespace: "probe"},
				Spec: v1.ServiceSpec{
					IPFamilyPolicy: ptrTo(v1.IPFamilyPolicyRequireDualStack),
					Ports:          []v1.ServicePort{{Port: 80}},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, v4, _ := net.ParseCIDR("10.96.0.0/16")
			_, v6, _ := net.ParseCIDR("fd00:96::/112")
			if len(svc.Spec.ClusterIPs) != 2 || !v4.Contains(net.ParseIP(svc.Spec.ClusterIPs[0])) ||
				!v6.Contains(net.ParseIP(svc.Spec.ClusterIPs[1])) {
				t.Errorf("clusterIPs %v, want one from %s and one from %s", svc.Spec.ClusterIPs, v4, v6)
			}
			if err := cluster.PublishEndpoints(ctx, svc, []testbed.EndpointSpec{{Pod: podA}, {Pod: podB, Terminating: true}}); err != nil {
				t.Fatal(err)
			}
			// Publishing again updates the same slices.
			if err := cluster.PublishEndpoints(ctx, svc, []testbed.EndpointSpec{{Pod: podA}}); err != nil {
				t.Fatal(err)
			}
			slices, err := cluster.Clientset.DiscoveryV1().EndpointSlices("probe").List(ctx,
				metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=dual"})
			if err != nil {
				t.Fatal(err)
			}
			if len(slices.Items) != 2 {
				t.Fatalf("%d slices, want one per family", len(slices.Items))
			}
			for _, slice := range slices.Items {
				if len(slice.Endpoints) != 1 || *slice.Endpoints[0].Zone != "zone-a" || *slice.Endpoints[0].NodeName != "node-a" {
					t.Errorf("slice %s endpoints %+v, want pod-a1 on node-a in zone-a", slice.Name, slice.Endpoints)
				}
				if _, err := time.Parse(time.RFC3339Nano, slice.Annotations[v1.EndpointsLastChangeTriggerTime]); err != nil {
					t.Errorf("slice %s trigger time: %v", slice.Name, err)
				}
			}
			if err := cluster.DeleteService(ctx, svc); err != nil {
				t.Fatal(err)
			}
		})
	})
	if t.Failed() || clusterID == "" {
		return
	}

	// The cluster's t.Cleanup has run: nothing of it may be left.
	if left := netnsWithPrefix(t, testbed.Prefix+clusterID); len(left) > 0 {
		t.Errorf("namespaces %v left after teardown", left)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("process %d left after teardown", pid)
		}
	}
	if _, err := os.Stat(clusterDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left after teardown (stat: %v)", clusterDir, err)
	}
	if links := hostLinksWithPrefix(t); len(links) > 0 {
		t.Errorf("links %v in the host namespace after teardown", links)
	}
}

// TestLeftoversOfKilledRunAreRemoved fakes what a killed run leaves behind (a
// namespace with a process in it and a temporary directory, with no live
// lock) and checks the next StartControlPlane removes it.
func TestLeftoversOfKilledRunAreRemoved(t *testing.T) {
	testbed.Require(t)
	const stale = testbed.Prefix + "dead00-cp"
	if err := exec.Command("ip", "netns", "add", stale).Run(); err != nil {
		t.Fatalf("creating stale namespace: %v", err)
	}
	sleeper := exec.Command("ip", "netns", "exec", stale, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	waitInNetns(t, sleeper.Process.Pid, stale)
	staleDir, err := os.MkdirTemp("", testbed.Prefix+"dead00-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleeper.Process.Kill()
		_ = exec.Command("ip", "netns", "delete", stale).Run()
		_ = os.RemoveAll(staleDir)
	})

	cluster := testbed.StartControlPlane(t)
	if left := netnsWithPrefix(t, stale); len(left) > 0 {
		t.Errorf("stale namespace %s still there", stale)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Errorf("process in the stale namespace still running 5s after StartControlPlane")
	}
	if _, err := os.Stat(staleDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale directory %s still there (stat: %v)", staleDir, err)
	}
	// And the new cluster works.
	if _, err := cluster.Clientset.CoreV1().Services("default").Get(context.Background(), "kubernetes", metav1.GetOptions{}); err != nil {
		t.Errorf("getting the kubernetes Service: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }
