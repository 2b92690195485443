package e2e

// Issue 11, item 1, "a watch ends with 410 Gone and relists", injected for real: with
// the apiserver up, Switchyard's EndpointSlice watch stops receiving events (the
// change made then is withheld from it), then ends with the apiserver's 410 Gone
// error event. The change must reach the kernel through the relist. TestFaults'
// apiserver outage may also produce 410s, but only by timing (docs/reliability.md);
// this one is certain. The fixture is TestFaults' (faults_test.go), with the daemon
// talking to the apiserver through testbed.WatchProxy.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// TestFaultsWatchExpired ends Switchyard's EndpointSlice watch with 410 Gone while
// the apiserver stays up, after withholding a change from it, and checks that the
// relist brings the change in: the kernel equals a full render, traffic goes to the
// new endpoint, /healthz stays 200 (the kernel can be programmed throughout), and
// the relist is seen both at the proxy and in the daemon's log. iptables mode with
// both backends, side by side as in TestFaults: the watch and relist are the
// informers', but what the relist's full sync writes is the backend's.
// mutation-checked: an UpdateFunc that ignores updates (pkg/controller
// trackerHandler, `UpdateFunc: func(_, obj any) {}`) fails the convergence wait after
// the relist (dry-run --diff still wants web's KUBE-SEP- chain for f2): the relist
// delivers the changed slice as an update. Checked again with both backends: both
// subtests fail there.
func TestFaultsWatchExpired(t *testing.T) {
	testbed.Require(t)
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testFaultsWatchExpired(t, backend)
		})
	}
}

// testFaultsWatchExpired is TestFaultsWatchExpired with one iptables backend.
func testFaultsWatchExpired(t *testing.T, backend string) {
	ctx := t.Context()
	s := &faultSuite{backend: backend}
	s.cluster = testbed.StartControlPlane(t, testbed.WithIPTablesBackend(s.backend))
	proxy := testbed.StartWatchProxy(t, s.cluster, "endpointslices")
	s.node = s.cluster.AddNode(t, "node-1", map[string]string{v1.LabelTopologyZone: "zone-a"})
	s.f1, s.f2 = s.cluster.AddPod(t, s.node, "f1"), s.cluster.AddPod(t, s.node, "f2")
	web, err := s.cluster.CreateService(ctx, makeService("web", func(svc *v1.Service) {
		svc.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	s.web = web
	if err := s.cluster.PublishEndpoints(ctx, web, ready(s.f1)); err != nil {
		t.Fatal(err)
	}
	s.sy = s.cluster.AddSwitchyard(t, s.node, testbed.SwitchyardOptions{
		AsKubeProxy: true,
		Kubeconfig:  proxy.Kubeconfig(t, s.cluster.AdminKubeconfig, testbed.APIServerIP),
		// -v=4 logs client-go's "Watch closed" for a watch ended by 410 Gone.
		ExtraArgs: []string{"--healthz-timeout=" + faultHealthTimeout.String(), "--v=4"},
	})
	if _, err := s.waitConverged(ctx, t); err != nil {
		t.Fatalf("before the fault: %v", err)
	}
	s.webAnswers(ctx, t, s.f1)
	for proxy.Watches() == 0 {
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	logBefore, err := s.sy.Log()
	if err != nil {
		t.Fatal(err)
	}
	health := s.watchHealthz(ctx)

	// The watch goes silent, and the change is made: the apiserver sends its events
	// (web's IPv4 and IPv6 slices modified), the proxy withholds them.
	proxy.Cut()
	s.moveWeb(ctx, t, s.f2)
	for proxy.Withheld(watch.Modified) < 2 {
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Ten --min-sync-periods: had the daemon seen the change, it would be in.
	time.Sleep(time.Second)
	if run := s.diff(ctx, t); run.exitCode != 1 {
		t.Fatalf("with the change withheld from the watch: dry-run --diff exit %d, want 1 (web's move to f2 pending):\n%s", run.exitCode, run.output)
	}

	proxy.Expire()
	expired := time.Now()
	var relist testbed.ListRequest
	for {
		if lists := proxy.ListsSince(expired); len(lists) > 0 {
			relist = lists[0]
			break
		}
		if time.Since(expired) > 30*time.Second {
			t.Fatalf("no relist of endpointslices within 30s of the 410; switchyard log:\n%s", s.sy.Process.Tail(15))
		}
		time.Sleep(20 * time.Millisecond)
	}
	relisted := relist.At.Sub(expired)
	converged, err := s.waitConverged(ctx, t)
	if err != nil {
		t.Fatal(err)
	}
	converged += time.Since(expired) - converged // measured from the 410
	s.webAnswers(ctx, t, s.f2)
	if reds := health.stop(); len(reds) > 0 {
		t.Errorf("/healthz was not 200 at %d polls during the fault; first: %s", len(reds), reds[0])
	}
	logAfter, err := s.sy.Log()
	if err != nil {
		t.Fatal(err)
	}
	closed := ""
	for line := range strings.SplitSeq(logAfter[min(len(logBefore), len(logAfter)):], "\n") {
		if strings.Contains(line, "too old resource version") {
			closed = line
		}
	}
	if closed == "" {
		t.Errorf("the daemon's log does not show the watch ended with 410 Gone:\n%s", s.sy.Process.Tail(30))
	}
	t.Logf("the daemon's log: %s", closed)
	s.figure(t, "EndpointSlice watch cut (%d MODIFIED events withheld), then ended with 410 Gone: relist (%s, %s) %s after the 410; the withheld change converged %s after the 410; /healthz 200 throughout (%d polls)",
		proxy.Withheld(watch.Modified), relist.Kind, relist.UserAgent, relisted.Round(time.Millisecond), converged.Round(time.Millisecond), health.polls)
}

// healthWatch polls /healthz every 100 ms until stopped, recording each answer that
// is not 200.
type healthWatch struct {
	done  chan struct{}
	wg    sync.WaitGroup
	polls int
	reds  []string
}

// watchHealthz starts a healthWatch of the suite's Switchyard.
func (s *faultSuite) watchHealthz(ctx context.Context) *healthWatch {
	h := &healthWatch{done: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			status, body, err := s.sy.Healthz(ctx)
			h.polls++
			if err != nil || status != http.StatusOK {
				h.reds = append(h.reds, fmt.Sprintf("%s: %d %q %v", time.Now().Format(time.TimeOnly), status, strings.TrimSpace(body), err))
			}
			select {
			case <-ctx.Done():
				return
			case <-h.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return h
}

// stop ends the polling and returns the answers that were not 200.
func (h *healthWatch) stop() []string {
	close(h.done)
	h.wg.Wait()
	return h.reds
}
