package nftables

// Node layout: node-1 runs the pinned kube-proxy in nftables mode, then
// Switchyard, then kube-proxy again; node-2 holds the remote pods; node-3
// runs Switchyard in nftables mode as a twin of node-1 (--hostname-override
// node-1: it renders for node-1's Node object, so its tables must equal
// kube-proxy's on node-1, node port addresses included, which both take from
// that object).

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// switchyardNFTables are the flags that put Switchyard in nftables mode.
var switchyardNFTables = []string{"--proxy-mode", "nftables"}

// TestNFTablesSwitchyard compares Switchyard's nftables mode with the pinned
// kube-proxy v1.37.2's: the tables a twin renders for the same node are
// identical up to element order, every probe of the world gets the same
// real outcome (which pods answer and the source each sees, refused,
// dropped) through both, each as the model predicts from the node's tables,
// and node-1 switches from kube-proxy to Switchyard and back under a
// connection load without a failed connection.
//
// It found, in nft-core 3e6004f, the missing "Drop traffic to unallocated
// ClusterIPs" rule of cluster-ips-check (the controller leaves
// nftables.Config.ServiceCIDRs empty; with the testbed's CIDRs filled in,
// every subtest passed), now written since the controller follows the
// ServiceCIDR objects: the tables are compared whole. mutation-checked: dropping the masquerade mark of
// external chains for Cluster-policy Services (pkg/nftables/objects.go)
// fails every table comparison with the five missing "meta mark set meta
// mark | 0x00004000" rules.
func TestNFTablesSwitchyard(t *testing.T) {
	testbed.Require(t)
	ctx := t.Context()
	w := startWorld(t)
	podClient := w.cluster.AddPod(t, w.node1, "client-1")
	node3 := w.cluster.AddNode(t, "node-3", nil)
	kubeProxy := w.cluster.AddKubeProxy(t, w.node1, "nftables")
	if _, err := testbed.WaitForReply(ctx, w.node1, "tcp", "10.96.1.1:80", 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	referenceText := nftDumps(ctx, t, w.node1)

	t.Run("twin tables equal kube-proxy's", func(t *testing.T) {
		// kube-proxy's minimum sync period (1 s) paces the twin's syncs as
		// kube-proxy's: both delete a flushed chain at the first sync a
		// second or more later, and with the testbed's 100 ms the API's
		// Service and EndpointSlice deletions fall into syncs too close
		// together for that, leaving Switchyard's chains until the
		// periodic sync.
		w.cluster.AddSwitchyard(t, node3, testbed.SwitchyardOptions{Kubeconfig: w.cluster.KubeProxyKubeconfig,
			MinSyncPeriod: time.Second,
			ExtraArgs:     []string{"--proxy-mode", "nftables", "--hostname-override", w.node1.Name}})
		compareTablesEventually(ctx, t, false, "kube-proxy on node-1", fixed(referenceText),
			"switchyard on node-3 as node-1", tablesOf(ctx, t, node3))
	})

	t.Run("twin tables follow kube-proxy's through changes", func(t *testing.T) {
		churn(ctx, t, w, func(step string) {
			compareTablesEventually(ctx, t, true, step+": kube-proxy on node-1",
				func() string { return nftDumps(ctx, t, w.node1) },
				step+": switchyard on node-3", tablesOf(ctx, t, node3))
		})
		compareTablesEventually(ctx, t, true, "before the changes", fixed(referenceText), "after them on node-1", tablesOf(ctx, t, w.node1))
		compareTablesEventually(ctx, t, true, "before the changes", fixed(referenceText),
			"after them on node-3", tablesOf(ctx, t, node3))
	})

	probes := w.probes(w.clients(w.node1, podClient))
	byKubeProxy := checkProbes(ctx, t, w, readTables(ctx, t, w.node1), probes)

	// Switch node-1 to Switchyard and back with connections running: from
	// a pod to a cluster IP, and from outside to a node port.
	loads := []*load{
		startLoad(ctx, podClient, "tcp", "10.96.1.1:80"),
		startLoad(ctx, w.cluster.Outside, "tcp", w.node1.IP+":30080"),
	}
	waitLoads(t, loads)
	if err := kubeProxy.Process.Stop(); err != nil {
		t.Fatal(err)
	}
	switchyard := w.cluster.AddSwitchyard(t, w.node1, testbed.SwitchyardOptions{Kubeconfig: w.cluster.KubeProxyKubeconfig,
		ExtraArgs: append([]string{"--sync-period", "5s"}, switchyardNFTables...)})
	waitLoads(t, loads)
	t.Run("after adoption, node-1's tables are kube-proxy's", func(t *testing.T) {
		// Strict, idle chains included: what kube-proxy flushed and left
		// (the churned Service's chains) Switchyard deletes at its next
		// periodic sync (--sync-period 5s here).
		compareTablesEventually(ctx, t, false, "kube-proxy on node-1", fixed(referenceText),
			"switchyard on node-1", tablesOf(ctx, t, w.node1))
	})
	t.Run("traffic through switchyard", func(t *testing.T) {
		bySwitchyard := checkProbes(ctx, t, w, readTables(ctx, t, w.node1), probes)
		for _, p := range probes {
			if p.addr == "10.96.1.8:80" {
				// Session affinity: which pod a client sticks to is
				// random; checkProbes checked it is one of the model's.
				continue
			}
			if got, want := bySwitchyard[p.String()], byKubeProxy[p.String()]; got != want {
				t.Errorf("%s: through switchyard %q, through kube-proxy %q", p, got, want)
			}
		}
	})
	if err := switchyard.Process.Stop(); err != nil {
		t.Fatal(err)
	}
	w.cluster.AddKubeProxy(t, w.node1, "nftables")
	waitLoads(t, loads)
	t.Run("no connection failed while switching", func(t *testing.T) {
		for i, l := range loads {
			attempts, failures := l.finish()
			if attempts == 0 || len(failures) > 0 {
				t.Errorf("load %d: %d connections, failed batches %v", i, attempts, failures)
			} else {
				t.Logf("load %d: %d connections, none failed", i, attempts)
			}
		}
	})
	t.Run("back on kube-proxy, the tables are unchanged", func(t *testing.T) {
		compareTablesEventually(ctx, t, true, "kube-proxy on node-1", fixed(referenceText), "kube-proxy again on node-1", tablesOf(ctx, t, w.node1))
	})
}

// churn changes a Service of its own through the API, step by step, and
// calls check after each: created with two endpoints, down to one (the
// single-endpoint form), to none (rejected), with session affinity and two
// endpoints again, deleted. None of the probed Services changes.
func churn(ctx context.Context, t *testing.T, w *world, check func(step string)) {
	t.Helper()
	svc, err := createService(ctx, w.cluster, service("churn", []string{"10.96.2.1", "fd00:96::201"}, func(svc *v1.Service) {
		svc.Spec.Type = v1.ServiceTypeNodePort
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80, 30087)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(pods ...*testbed.Pod) {
		t.Helper()
		var endpoints []testbed.EndpointSpec
		for _, pod := range pods {
			endpoints = append(endpoints, testbed.EndpointSpec{Pod: pod})
		}
		if err := w.cluster.PublishEndpoints(ctx, svc, endpoints); err != nil {
			t.Fatal(err)
		}
	}
	publish(w.web1, w.web2)
	check("created with two endpoints")
	publish(w.web2)
	check("one endpoint")
	publish()
	check("no endpoints")
	svc, err = w.cluster.Clientset.CoreV1().Services(namespace).Get(ctx, "churn", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(30))}}
	if svc, err = w.cluster.Clientset.CoreV1().Services(namespace).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	publish(w.web1, w.web2)
	check("session affinity, two endpoints")
	if err := w.cluster.DeleteService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := w.cluster.DeleteEndpoints(ctx, svc); err != nil {
		t.Fatal(err)
	}
	check("deleted")
}

// load opens short connections from a client, in batches, until finished,
// counting attempts and failed batches.
type load struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	attempts int
	failures []error
}

func startLoad(ctx context.Context, from testbed.Client, proto, addr string) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			counts, err := testbed.Distribution(ctx, from, proto, addr, 20)
			l.mu.Lock()
			for _, n := range counts {
				l.attempts += n
			}
			if err != nil {
				l.failures = append(l.failures, err)
				l.attempts++ // at least one failed attempt
			}
			l.mu.Unlock()
			// Gaps of 100 ms between batches cover every moment of a
			// switch without exhausting the servers' TIME_WAIT ports.
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return l
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts
}

func (l *load) finish() (int, []error) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts, l.failures
}

// waitLoads waits until every load made 40 more connection attempts, so
// the loads really ran across what happened before.
func waitLoads(t *testing.T, loads []*load) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i, l := range loads {
		target := l.count() + 40
		for l.count() < target {
			if time.Now().After(deadline) {
				l.mu.Lock()
				failures := slices.Clone(l.failures)
				l.mu.Unlock()
				t.Fatalf("load %d made fewer than 40 connection attempts in 30s; failed batches: %v", i, failures)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
