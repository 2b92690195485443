//go:build linux && !ipvsguest

package ipvs

// TestConntrackLatencyInVM is issue 11 item 2's end-to-end figure: how long a
// one-endpoint change of a UDP Service takes, from the API write to the real server
// gone from the IPVS table and to its stale conntrack entries deleted, with a small
// conntrack table and with SWITCHYARD_CONNTRACK_VM_LATENCY_ENTRIES (1,000,000) in the
// node's namespace, in one guest run. The host's nf_conntrack_max (262,144 here) is
// global and read-only in a namespace, so the node is TestDaemonInVM's QEMU guest,
// whose kernel the test owns. A benchmark, not a CI test: `sudo VM_ENTRIES=1000000
// make bench-conntrack` runs it (hack/bench-conntrack.sh).

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
	"github.com/switchyard-io/switchyard/test/vm"
)

func TestConntrackLatencyInVM(t *testing.T) {
	entries := os.Getenv(ctEntriesEnv)
	if entries == "" {
		t.Skipf("%s is not set: a benchmark (sudo VM_ENTRIES=1000000 make bench-conntrack)", ctEntriesEnv)
	}
	kernel := requireKernel(t)
	ctx := t.Context()
	work := t.TempDir()
	type built struct {
		binDir, guestTest string
		err               error
	}
	builds := make(chan built, 1)
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
	if _, err := c.CreateService(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: dnsService, Namespace: metav1.NamespaceDefault},
		Spec: v1.ServiceSpec{
			ClusterIP:  dnsClusterIP,
			IPFamilies: []v1.IPFamily{v1.IPv4Protocol},
			Ports:      []v1.ServicePort{{Name: "dns", Protocol: v1.ProtocolUDP, Port: dnsPort, TargetPort: intstr.FromInt32(8080)}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if err := publishDNS(ctx, c, "pod-a", "pod-b"); err != nil {
		t.Fatal(err)
	}
	config := writeGuestConfig(t, c, work)
	kubeconfig := writeGuestKubeconfig(t, c, work, testbed.APIServerPort)
	b := <-builds
	if b.err != nil {
		t.Fatal(b.err)
	}

	actions := map[string]func(context.Context) error{
		stepDNSB:  func(ctx context.Context) error { return publishDNS(ctx, c, "pod-b") },
		stepDNSAB: func(ctx context.Context) error { return publishDNS(ctx, c, "pod-a", "pod-b") },
	}
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
			if err := action(ctx); err != nil {
				stepErrs = append(stepErrs, fmt.Errorf("step %s: %w", step, err))
				continue
			}
			done = append(done, step)
		}
	}()
	vmCtx, cancel := context.WithTimeout(ctx, 50*time.Minute)
	defer cancel()
	res, err := vm.Run(vmCtx, vm.Config{
		Kernel:       kernel,
		ExtraModules: extraModules,
		Network:      &vm.NetConfig{HostNetNS: c.Netns},
		// 1M conntrack entries take some 400 MB of kernel memory.
		MemoryMB: 3072,
		Files: map[string]string{
			guestBinDir:                b.binDir,
			guestConfig:                config,
			guestKubeconfig:            kubeconfig,
			"/usr/local/bin/ipvs.test": b.guestTest,
		},
		Command: []string{"ipvs.test", "-test.run", "^TestGuestConntrackLatency$", "-test.v", "-test.count=1",
			"-test.timeout=45m", "-ctlatency.entries=" + entries},
		Timeout: 48 * time.Minute,
		Output:  console,
	})
	console.close()
	wg.Wait()
	if err != nil {
		t.Fatalf("running the guest: %v\nconsole:\n%s", err, res.Console)
	}
	for _, line := range strings.Split(res.Output, "\n") {
		if strings.Contains(line, ".go:") || strings.HasPrefix(strings.TrimSpace(line), "---") {
			t.Log(strings.TrimSpace(line))
		}
	}
	for _, err := range stepErrs {
		t.Error(err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Output, "--- PASS: TestGuestConntrackLatency") {
		t.Fatalf("guest test exited %d:\n%s", res.ExitCode, res.Output)
	}
	if strings.Join(done, ",") != strings.Join(ctLatencySteps, ",") {
		t.Errorf("API steps done: %v, want %v", done, ctLatencySteps)
	}
}

// publishDNS creates or updates dns's EndpointSlice with the named guest pods, ready,
// on the guest's node.
func publishDNS(ctx context.Context, c *testbed.Cluster, podNames ...string) error {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: dnsSlice, Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: dnsService, discoveryv1.LabelManagedBy: testbed.ManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("dns"), Protocol: ptr.To(v1.ProtocolUDP), Port: ptr.To[int32](8080)}},
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
	existing, err := client.Get(ctx, dnsSlice, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = client.Create(ctx, slice, metav1.CreateOptions{})
	case err == nil:
		slice.ResourceVersion = existing.ResourceVersion
		_, err = client.Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("publishing EndpointSlice %s: %w", dnsSlice, err)
	}
	return nil
}
