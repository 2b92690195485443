//go:build linux && !ipvsguest

package ipvs

// TestDaemonInVM is issue 9's "the same for a config with mode ipvs in the VM": the
// real switchyard daemon, started exactly as kubeadm starts kube-proxy, in IPVS mode
// against a real kube-apiserver. The control plane is the testbed's (etcd and
// kube-apiserver with RBAC in a namespace the test creates); QEMU is started inside
// that namespace, so the guest reaches the apiserver at 10.0.2.2:6443 through QEMU's
// user-mode network, and nothing is configured on the host. The guest half is
// TestGuestDaemon (daemon_guest_test.go); the shared plan is daemon_plan_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
	"github.com/switchyard-io/switchyard/test/vm"
)

// guestPods are the pod IPs of topology() (guest_test.go), which the host publishes
// as endpoints.
var guestPods = map[string]string{"pod-a": "10.244.1.11", "pod-b": "10.244.1.12", "pod-c": "10.244.1.13"}

func TestDaemonInVM(t *testing.T) {
	kernel := requireKernel(t)
	start := time.Now()
	ctx := t.Context()

	// The two static binaries build while the control plane starts.
	type built struct {
		binDir, guestTest string
		err               error
	}
	builds := make(chan built, 1)
	work := t.TempDir()
	go func() {
		binDir, err := buildDaemonBinDir(work)
		if err != nil {
			builds <- built{err: err}
			return
		}
		guestTest, err := buildGuestTests(work)
		builds <- built{binDir: binDir, guestTest: guestTest, err: err}
	}()

	c := testbed.StartControlPlane(t)
	applyRBAC(t, c)
	createVMNode(t, c)
	web := createWeb(t, c)
	publishWeb(t, c, "pod-a", "pod-b")
	t.Logf("control plane, RBAC, Node, Service and EndpointSlice ready in %v", time.Since(start).Round(10*time.Millisecond))

	// The daemon reaches kube-apiserver through the watch proxy (test/testbed), which
	// passes everything through until the 410 fault steps tell it otherwise.
	proxy := testbed.StartWatchProxy(t, c, "endpointslices")
	config := writeGuestConfig(t, c, work)
	kubeconfig := writeGuestKubeconfig(t, c, work, proxy.Port)
	b := <-builds
	if b.err != nil {
		t.Fatal(b.err)
	}
	t.Logf("binaries built, config written, %v after start", time.Since(start).Round(10*time.Millisecond))

	// The guest announces each step on the console; the host makes that API change.
	actions := map[string]func(context.Context) error{
		stepEndpointsBC:   func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-b", "pod-c") },
		stepEndpointsNone: func(ctx context.Context) error { return publishWebErr(ctx, c /* none */) },
		stepDeleteService: func(ctx context.Context) error { return deleteWeb(ctx, c, web) },
	}
	maps.Copy(actions, faultActions(t, c, proxy))
	console := newStepWatcher(t)
	var done []string
	var stepErrs []error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for step := range console.steps {
			action, ok := actions[step]
			if !ok {
				stepErrs = append(stepErrs, fmt.Errorf("the guest asked for unknown step %q", step))
				continue
			}
			t0 := time.Now()
			if err := action(ctx); err != nil {
				stepErrs = append(stepErrs, fmt.Errorf("step %s: %w", step, err))
				continue
			}
			t.Logf("host: step %s done through the API in %v", step, time.Since(t0).Round(time.Millisecond))
			done = append(done, step)
		}
	}()

	var env []string
	if v := os.Getenv("SWITCHYARD_VM_VERBOSE"); v != "" {
		env = append(env, "SWITCHYARD_VM_VERBOSE="+v) // the guest logs the daemon's log too
	}
	// The guest takes about 3 minutes (software emulation); on a host loaded with other
	// test suites (load average 30-40) the same run took over 6.
	vmCtx, cancel := context.WithTimeout(ctx, 11*time.Minute)
	defer cancel()
	res, err := vm.Run(vmCtx, vm.Config{
		Kernel:       kernel,
		ExtraModules: extraModules,
		Network:      &vm.NetConfig{HostNetNS: c.Netns},
		MemoryMB:     1024,
		Files: map[string]string{
			guestBinDir:                b.binDir,
			guestConfig:                config,
			guestKubeconfig:            kubeconfig,
			"/usr/local/bin/ipvs.test": b.guestTest,
		},
		Command: []string{"ipvs.test", "-test.run", "^TestGuestDaemon$", "-test.v", "-test.count=1"},
		Env:     env,
		Timeout: 10 * time.Minute,
		Output:  console,
	})
	console.close()
	wg.Wait()
	if err != nil {
		t.Fatalf("running the guest: %v\nconsole:\n%s", err, res.Console)
	}
	t.Logf("guest: boot %v, run %v, total %v (%s); whole test %v", res.BootTime.Round(10*time.Millisecond),
		res.RunTime.Round(10*time.Millisecond), res.Total.Round(10*time.Millisecond), res.Accel,
		time.Since(start).Round(10*time.Millisecond))
	if len(env) == 0 { // verbose runs have logged the whole console already
		for _, line := range strings.Split(res.Output, "\n") {
			if strings.Contains(line, ".go:") || strings.HasPrefix(strings.TrimSpace(line), "---") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
	for _, err := range stepErrs {
		t.Error(err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Output, "--- PASS: TestGuestDaemon") {
		t.Fatalf("guest test exited %d:\n%s", res.ExitCode, res.Output)
	}
	if strings.Join(done, ",") != strings.Join(daemonSteps, ",") {
		t.Errorf("API steps done: %v, want %v", done, daemonSteps)
	}
}

// buildDaemonBinDir builds the static switchyard binary into work/bin and links
// kube-proxy to it, as a kube-proxy image swapped for Switchyard's would have it; the
// directory is copied into the guest with the link.
func buildDaemonBinDir(work string) (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(work, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	build := exec.Command("go", "build", "-o", filepath.Join(binDir, "switchyard"), "./cmd/proxy")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building switchyard: %w\n%s", err, out)
	}
	if err := os.Symlink("switchyard", filepath.Join(binDir, "kube-proxy")); err != nil {
		return "", err
	}
	return binDir, nil
}

// buildGuestTests builds this package's guest tests (CGO_ENABLED=0, tag ipvsguest).
func buildGuestTests(work string) (string, error) {
	bin := filepath.Join(work, "ipvs.test")
	build := exec.Command("go", "test", "-c", "-tags", "ipvsguest", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the guest tests: %w\n%s", err, out)
	}
	return bin, nil
}

// applyRBAC applies manifests/deploy/rbac.yaml, so the daemon runs as the restricted
// identity with exactly the rights the project ships, and waits until they apply.
func applyRBAC(t *testing.T, c *testbed.Cluster) {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(t.Context(), "apply", "--server-side", "--field-manager=switchyard-e2e",
		"-f", filepath.Join(root, "manifests", "deploy", "rbac.yaml")); err != nil {
		t.Fatalf("kubectl apply rbac.yaml: %v\n%s", err, out)
	}
	restricted, err := c.ClientsetFor(c.RestrictedKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := restricted.DiscoveryV1().EndpointSlices("").List(t.Context(), metav1.ListOptions{Limit: 1})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rbac.yaml, %s still cannot list EndpointSlices: %v", c.RestrictedUser, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createVMNode creates the guest's Node object, with the guest's address as its
// InternalIP, as kubelet would register it.
func createVMNode(t *testing.T, c *testbed.Cluster) {
	t.Helper()
	if err := createVMNodeErr(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

// createVMNodeErr is createVMNode, returning its error (also the fault step that
// re-creates the Node).
func createVMNodeErr(ctx context.Context, c *testbed.Cluster) error {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: daemonNode,
			Labels: map[string]string{"kubernetes.io/hostname": daemonNode, "kubernetes.io/os": "linux"}},
		Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}},
	}
	if _, err := c.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Node %s: %w", daemonNode, err)
	}
	status, err := json.Marshal(map[string]any{"status": map[string]any{
		"addresses": []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: guestIP}, {Type: v1.NodeHostName, Address: daemonNode}},
		"conditions": []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "VMNode",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}})
	if err != nil {
		return err
	}
	if _, err := c.Clientset.CoreV1().Nodes().Patch(ctx, daemonNode, types.StrategicMergePatchType, status,
		metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("patching status of Node %s: %w", daemonNode, err)
	}
	return nil
}

// createWeb creates Service default/web at webClusterIP, TCP 80 to the pods' 8080,
// of type NodePort at webNodePort (the node-address fault moves that virtual server).
func createWeb(t *testing.T, c *testbed.Cluster) *v1.Service {
	t.Helper()
	svc, err := c.CreateService(t.Context(), &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: metav1.NamespaceDefault},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeNodePort,
			ClusterIP:  webClusterIP,
			IPFamilies: []v1.IPFamily{v1.IPv4Protocol},
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: webPort, TargetPort: intstr.FromInt32(8080),
				NodePort: webNodePort}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

const webSlice = "web-vm"

func publishWeb(t *testing.T, c *testbed.Cluster, podNames ...string) {
	t.Helper()
	if err := publishWebErr(t.Context(), c, podNames...); err != nil {
		t.Fatal(err)
	}
}

// publishWebErr creates or updates web's EndpointSlice with the named guest pods,
// ready, on the guest's node; none publishes an empty slice, as the EndpointSlice
// controller does.
func publishWebErr(ctx context.Context, c *testbed.Cluster, podNames ...string) error {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: webSlice, Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: testbed.ManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for _, name := range podNames {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{guestPods[name]},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(daemonNode),
			TargetRef:  &v1.ObjectReference{Kind: "Pod", Name: name},
		})
	}
	client := c.Clientset.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	existing, err := client.Get(ctx, webSlice, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = client.Create(ctx, slice, metav1.CreateOptions{})
	case err == nil:
		slice.ResourceVersion = existing.ResourceVersion
		_, err = client.Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("publishing EndpointSlice %s: %w", webSlice, err)
	}
	return nil
}

// deleteWeb deletes web and its slice (no garbage collector runs in the testbed).
func deleteWeb(ctx context.Context, c *testbed.Cluster, svc *v1.Service) error {
	if err := c.Clientset.DiscoveryV1().EndpointSlices(svc.Namespace).Delete(ctx, webSlice, metav1.DeleteOptions{}); err != nil {
		return err
	}
	return c.Clientset.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{})
}

// writeGuestConfig has the pinned kube-proxy write the KubeProxyConfiguration, with
// mode ipvs and the settings testbed's AsKubeProxy uses: cluster CIDR (IPv4 only: the
// guest node is single-stack), the restricted kubeconfig (at its guest path), healthz
// and metrics on the node IP, and conntrack left alone. kube-proxy --write-config-to
// exits before it touches the kernel or the API server.
func writeGuestConfig(t *testing.T, c *testbed.Cluster, work string) string {
	t.Helper()
	path := filepath.Join(work, "config.conf")
	out, err := exec.Command(c.Tool("kube-proxy"), "--write-config-to="+path,
		"--proxy-mode=ipvs",
		"--kubeconfig="+guestKubeconfig,
		"--cluster-cidr=10.244.0.0/16",
		"--bind-address="+guestIP,
		"--healthz-bind-address="+daemonHealthz,
		"--metrics-bind-address="+guestIP+":10249",
		"--ipvs-min-sync-period=100ms",
		"--iptables-localhost-nodeports=false",
		"--conntrack-max-per-core=0", "--conntrack-min=0",
		"--conntrack-tcp-timeout-established=0s", "--conntrack-tcp-timeout-close-wait=0s",
		"--v=2",
	).CombinedOutput()
	if err != nil {
		t.Fatalf("kube-proxy --write-config-to: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nmode: ipvs\n") {
		t.Fatalf("kube-proxy wrote no mode: ipvs:\n%s", data)
	}
	return path
}

// writeGuestKubeconfig copies the restricted kubeconfig with the server the guest
// reaches: 10.0.2.2, which QEMU maps to the control plane namespace's loopback, where
// kube-apiserver listens too (it binds 0.0.0.0), and port: testbed.APIServerPort, or a
// testbed.WatchProxy's.
func writeGuestKubeconfig(t *testing.T, c *testbed.Cluster, work string, port int) string {
	t.Helper()
	config, err := clientcmd.LoadFromFile(c.RestrictedKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cluster := range config.Clusters {
		cluster.Server = fmt.Sprintf("https://10.0.2.2:%d", port)
	}
	path := filepath.Join(work, "kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// stepWatcher reads the console as it arrives: it logs it (all of it with
// SWITCHYARD_VM_VERBOSE) and sends each step the guest announces.
type stepWatcher struct {
	w     *io.PipeWriter
	steps chan string
	done  chan struct{}
}

func newStepWatcher(t *testing.T) *stepWatcher {
	r, w := io.Pipe()
	s := &stepWatcher{w: w, steps: make(chan string, len(daemonSteps)+4), done: make(chan struct{})}
	verbose := os.Getenv("SWITCHYARD_VM_VERBOSE") != ""
	go func() {
		defer close(s.done)
		defer close(s.steps)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if verbose {
				t.Log(line)
			}
			if step, ok := strings.CutPrefix(strings.TrimSpace(line), stepMarker); ok {
				select {
				case s.steps <- step:
				default: // more steps than planned: reported as unknown or missing
				}
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	return s
}

func (s *stepWatcher) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *stepWatcher) close() {
	s.w.Close()
	<-s.done
}
