package nftables

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// TestOneEndpointChangeWritesOnlyThatService pins the whole partial transaction of
// one endpoint added to one of three services: that service's policy chain and the
// new endpoint's hairpin element, nothing of the others, no fixed chain, no listing.
func TestOneEndpointChangeWritesOnlyThatService(t *testing.T) {
	cfg := testConfig()
	p, _, _ := newTestProxier(t, cfg)
	tracker := endpoints.NewTracker(testNode)
	for _, obj := range []any{
		makeService("ns", "a", "172.30.0.1"), makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode}),
		makeService("ns", "b", "172.30.0.2"), makeSlice("ns", "b", "b-1", 8080, ep{IP: "10.180.1.1", Node: otherNode}),
		lbService(eTPLocal), makeSlice("ns", "lb", "lb-1", 8080, ep{IP: "10.180.0.3", Node: testNode}),
	} {
		feed(t, tracker, obj)
	}
	mustSync(t, p, tracker.Snapshot(), true)

	feed(t, tracker, makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode}, ep{IP: "10.180.0.2", Node: testNode}))
	res := mustSync(t, p, tracker.Snapshot(), false)
	want := `add chain ip kube-proxy service-4BGMBBTA-ns/a/tcp/p80
flush chain ip kube-proxy service-4BGMBBTA-ns/a/tcp/p80
add rule ip kube-proxy service-4BGMBBTA-ns/a/tcp/p80 meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 10.180.0.1 . 8080 , 1 : 10.180.0.2 . 8080 }
add element ip kube-proxy hairpin-connections { 10.180.0.2 . 10.180.0.2 . tcp . 8080 }
`
	if diff := cmp.Diff(want, res.Transaction); diff != "" {
		t.Errorf("partial transaction (-want +got):\n%s", diff)
	}

	// The same Service again, unchanged: nothing to write, no transaction at all.
	feed(t, tracker, makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode}, ep{IP: "10.180.0.2", Node: testNode}))
	if res := mustSync(t, p, tracker.Snapshot(), false); res.Transaction != "" {
		t.Errorf("an unchanged snapshot wrote:\n%s", res.Transaction)
	}
}

func feed(t *testing.T, tracker *endpoints.Tracker, obj any) {
	t.Helper()
	switch o := obj.(type) {
	case *v1.Service:
		if err := tracker.OnServiceUpdate(o); err != nil {
			t.Fatal(err)
		}
	default:
		if err := tracker.OnEndpointSliceUpdate(asSlice(t, o)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStaleChainsDeletedAfterADelay checks kube-proxy's two-step removal: the chains
// of a removed service are flushed in the sync that removes its elements, and deleted
// by the first sync at least StaleChainDelay later; a chain needed again before that
// is rewritten and not deleted.
//
// mutation-checked: deleting stale chains without waiting (a zero delay in
// deleteStaleChains) fails "not yet"; not taking a rewritten chain off the stale list
// fails "needed again".
func TestStaleChainsDeletedAfterADelay(t *testing.T) {
	cfg := testConfig()
	p, fake, clock := newTestProxier(t, cfg)
	tracker := endpoints.NewTracker(testNode)
	feed(t, tracker, makeService("ns", "a", "172.30.0.1", clientIP))
	feed(t, tracker, makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode}))
	feed(t, tracker, makeService("ns", "b", "172.30.0.2"))
	feed(t, tracker, makeSlice("ns", "b", "b-1", 8080, ep{IP: "10.180.1.1", Node: otherNode}))
	mustSync(t, p, tracker.Snapshot(), true)

	tracker.OnServiceDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}})
	res := mustSync(t, p, tracker.Snapshot(), false)
	wantStale := []string{"endpoint-UFK6A6IJ-ns/a/tcp/p80__10.180.0.1/8080", "service-4BGMBBTA-ns/a/tcp/p80"}
	if diff := cmp.Diff(wantStale, p.StaleChains()); diff != "" {
		t.Fatalf("stale chains (-want +got):\n%s\n%s", diff, res.Transaction)
	}
	for _, c := range wantStale {
		if ch := fake.Table.Chains[c]; ch == nil || len(ch.Rules) != 0 {
			t.Errorf("%s should be present and empty after the removal", c)
		}
		if !strings.Contains(res.Transaction, "flush chain ip kube-proxy "+c) || strings.Contains(res.Transaction, "delete chain") {
			t.Errorf("the removal should flush %s and delete no chain:\n%s", c, res.Transaction)
		}
	}

	t.Run("not yet", func(t *testing.T) {
		clock.now = clock.now.Add(StaleChainDelay - time.Millisecond)
		if res := mustSync(t, p, tracker.Snapshot(), false); res.DeletedChains != 0 {
			t.Errorf("deleted %d chains before the delay", res.DeletedChains)
		}
	})
	t.Run("needed again", func(t *testing.T) {
		// b's chain goes, and comes back before the delay is over.
		tracker.OnServiceDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}})
		mustSync(t, p, tracker.Snapshot(), false)
		feed(t, tracker, makeService("ns", "b", "172.30.0.2"))
		mustSync(t, p, tracker.Snapshot(), false)
		clock.now = clock.now.Add(StaleChainDelay)
		res := mustSync(t, p, tracker.Snapshot(), false)
		if res.DeletedChains != 2 {
			t.Errorf("deleted %d chains, want a's 2", res.DeletedChains)
		}
		if ch := fake.Table.Chains["service-K3LGGN73-ns/b/tcp/p80"]; ch == nil || len(ch.Rules) != 1 {
			t.Errorf("b's chain, needed again, is gone or empty: %+v", ch)
		}
		for _, c := range wantStale {
			if fake.Table.Chains[c] != nil {
				t.Errorf("%s still exists after the delay", c)
			}
		}
	})
}

// TestSharedElementsStayWhileWanted removes one of two owners of shared elements:
// the cluster IP two ports of a Service share, and the hairpin element of an endpoint
// two Services share.
func TestSharedElementsStayWhileWanted(t *testing.T) {
	cfg := testConfig()
	p, fake, _ := newTestProxier(t, cfg)
	tracker := endpoints.NewTracker(testNode)
	twoPorts := func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "p81", Port: 81, Protocol: v1.ProtocolTCP})
	}
	feed(t, tracker, makeService("ns", "a", "172.30.0.1", twoPorts))
	slice := makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode})
	feed(t, tracker, slice)
	feed(t, tracker, makeService("ns", "b", "172.30.0.2"))
	feed(t, tracker, makeSlice("ns", "b", "b-1", 8080, ep{IP: "10.180.0.1", Node: testNode}))
	mustSync(t, p, tracker.Snapshot(), true)

	feed(t, tracker, makeService("ns", "a", "172.30.0.1")) // port p81 goes
	tracker.OnServiceDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}})
	res := mustSync(t, p, tracker.Snapshot(), false)
	if fake.Table.Sets["cluster-ips"].FindElement("172.30.0.1") == nil {
		t.Errorf("a's cluster IP went with its second port:\n%s", res.Transaction)
	}
	if fake.Table.Sets["hairpin-connections"].FindElement("10.180.0.1", "10.180.0.1", "tcp", "8080") == nil {
		t.Errorf("the hairpin element a still needs went with b:\n%s", res.Transaction)
	}
	if fake.Table.Sets["cluster-ips"].FindElement("172.30.0.2") != nil {
		t.Errorf("b's cluster IP is still there:\n%s", res.Transaction)
	}
}

// TestDualStack renders a dual-stack Service for both families: each table holds its
// own family's cluster IP and endpoints, with IPv6 endpoint chain names written with
// dots, and their Proxiers work side by side.
func TestDualStack(t *testing.T) {
	svc := makeService("ns", "web", "172.30.0.10", clientIP, func(s *v1.Service) {
		s.Spec.ClusterIPs = []string{"172.30.0.10", "fd00:30::10"}
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
	})
	snap := snapshotOf(t, svc,
		makeSlice("ns", "web", "web-v4", 8080, ep{IP: "10.180.0.1", Node: testNode}),
		v6Slice(makeSlice("ns", "web", "web-v6", 8080, ep{IP: "fd00:10::1", Node: testNode})))
	for _, tt := range []struct {
		cfg              *Config
		want, notWant    []string
		clusterIP, hairp string
	}{
		{cfg: testConfig(), want: []string{"endpoint-", "__10.180.0.1/8080", "dnat to 10.180.0.1:8080", "update @affinity-"},
			notWant: []string{"fd00"}, clusterIP: "172.30.0.10"},
		{cfg: testConfigV6(), want: []string{"__fd00.10..1/8080", "dnat to [fd00:10::1]:8080", "{ ip6 saddr }", "ip6 daddr"},
			notWant: []string{"10.180.", "172.30."}, clusterIP: "fd00:30::10"},
	} {
		t.Run(string(tt.cfg.Family), func(t *testing.T) {
			p, fake, _ := newTestProxier(t, tt.cfg)
			if _, err := p.Sync(context.Background(), snap); err != nil {
				t.Fatal(err)
			}
			dump := fake.Dump()
			for _, s := range tt.want {
				if !strings.Contains(dump, s) {
					t.Errorf("%s table lacks %q:\n%s", tt.cfg.Family, s, dump)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(dump, s) {
					t.Errorf("%s table holds %q of the other family", tt.cfg.Family, s)
				}
			}
			if fake.Table.Sets["cluster-ips"].FindElement(tt.clusterIP) == nil {
				t.Errorf("cluster-ips lacks %s", tt.clusterIP)
			}
		})
	}
}

func asSlice(t *testing.T, obj any) *discovery.EndpointSlice {
	t.Helper()
	s, ok := obj.(*discovery.EndpointSlice)
	if !ok {
		t.Fatalf("unexpected object %T", obj)
	}
	return s
}

// TestStatusDigestsTheLastTransaction checks Status's digest against the text the fake
// kernel last received, and that a sync with nothing to write keeps it.
//
// mutation-checked: hashing the transaction before a partial sync's (keeping the
// full sync's digest) fails it.
func TestStatusDigestsTheLastTransaction(t *testing.T) {
	cfg := testConfig()
	p, fake, _ := newTestProxier(t, cfg)
	if st := p.Status(); st.Digest.SHA256 != "" {
		t.Errorf("digest before any sync: %+v", st.Digest)
	}
	tracker := endpoints.NewTracker(testNode)
	feed(t, tracker, makeService("ns", "a", "172.30.0.1"))
	mustSync(t, p, tracker.Snapshot(), true)
	feed(t, tracker, makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode}))
	snap := tracker.Snapshot()
	mustSync(t, p, snap, false)
	want := proxy.DigestOf([]byte(fake.LastTransaction.String()), snap.Generation)
	if diff := cmp.Diff(want, p.Status().Digest); diff != "" {
		t.Errorf("digest (-want +got):\n%s", diff)
	}
	mustSync(t, p, tracker.Snapshot(), false) // nothing changed
	if got := p.Status().Digest; got.SHA256 != want.SHA256 {
		t.Errorf("a sync that wrote nothing changed the digest")
	}
}

// TestFailedTransactionMakesTheNextSyncFull checks that a transaction the kernel
// refuses leaves nothing assumed: the next sync is full, lists the table again and
// brings it to the wanted state.
func TestFailedTransactionMakesTheNextSyncFull(t *testing.T) {
	cfg := testConfig()
	p, fake, _ := newTestProxier(t, cfg)
	tracker := endpoints.NewTracker(testNode)
	feed(t, tracker, makeService("ns", "a", "172.30.0.1"))
	feed(t, tracker, makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode}))
	mustSync(t, p, tracker.Snapshot(), true)

	// Someone deletes a chain the mirror believes in: the partial transaction that
	// rewrites it still works (add+flush), but one that deletes an element that is
	// gone fails.
	tx := fake.NewTransaction()
	tx.Delete(knftElement(mapServiceIPs, "172.30.0.1 . tcp . 80", "", ""))
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	tracker.OnServiceDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}})
	snap := tracker.Snapshot()
	if _, err := p.SyncDetailed(context.Background(), snap); err == nil {
		t.Fatal("deleting a missing element succeeded")
	}
	res := mustSync(t, p, snap, true)
	if res.Reason != proxy.ReasonFailed {
		t.Errorf("reason %q, want %q", res.Reason, proxy.ReasonFailed)
	}
	fresh := newFake(cfg)
	applyFull(t, fresh, snap, cfg, true)
	if diff := cmp.Diff(canonicalDump(t, fresh.Dump()), canonicalDump(t, withoutChains(fake.Dump(), p.StaleChains()))); diff != "" {
		t.Errorf("after the full sync (-want +got):\n%s", diff)
	}
}

// TestCanaryIgnoredBeforeTheFirstSync: the canary check finds nothing wrong before a
// sync has applied anything (the first full sync may still be running), and finds a
// deleted table after one has.
// mutation-checked: removing the Applied() == nil guard in CheckKernel fails the first
// check; make bench-nftables saw that race queue a second full sync (3 min 34 s at
// 10k × 10 on a loaded machine) behind the first.
func TestCanaryIgnoredBeforeTheFirstSync(t *testing.T) {
	ctx := context.Background()
	p, fake, _ := newTestProxier(t, testConfig())
	if ok, err := p.CheckKernel(ctx); err != nil || !ok {
		t.Fatalf("before the first sync: CheckKernel = %v, %v; want true", ok, err)
	}
	mustSync(t, p, snapshotOf(t, makeService("ns", "a", "172.30.0.1"), makeSlice("ns", "a", "a-1", 8080, ep{IP: "10.180.0.1", Node: testNode})), true)
	if ok, err := p.CheckKernel(ctx); err != nil || !ok {
		t.Fatalf("after the first sync: CheckKernel = %v, %v; want true", ok, err)
	}
	if err := Cleanup(ctx, fake); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.CheckKernel(ctx); err != nil || ok {
		t.Fatalf("after the table was deleted: CheckKernel = %v, %v; want false", ok, err)
	}
}
