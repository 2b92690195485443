package iptables

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// syntheticCluster is a large cluster for benchmarks: nServices ClusterIP services in
// one namespace, each with nEndpoints ready endpoints spread over two nodes.
type syntheticCluster struct {
	tracker *endpoints.Tracker
	slices  []*discovery.EndpointSlice
}

func newSyntheticCluster(tb testing.TB, nServices, nEndpoints int) *syntheticCluster {
	tb.Helper()
	c := &syntheticCluster{tracker: endpoints.NewTracker(testNode)}
	for i := range nServices {
		name := fmt.Sprintf("svc-%d", i)
		svc := makeService("bench", name, fmt.Sprintf("172.30.%d.%d", i/250, i%250+1), func(s *v1.Service) {
			s.Spec.Ports[0].Name = "http"
		})
		if err := c.tracker.OnServiceUpdate(svc); err != nil {
			tb.Fatal(err)
		}
		eps := make([]ep, nEndpoints)
		for j := range eps {
			n := i*nEndpoints + j
			node := testNode
			if j%2 == 1 {
				node = otherNode
			}
			eps[j] = ep{IP: fmt.Sprintf("10.%d.%d.%d", 100+n/62500, n/250%250, n%250+1), Node: node}
		}
		slice := makeSlice("bench", name, name+"-abc", 8080, eps...)
		slice.Ports[0].Name = new("http")
		c.slices = append(c.slices, slice)
		if err := c.tracker.OnEndpointSliceUpdate(slice); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

func benchmarkRenderFull(b *testing.B, nServices, nEndpoints int) {
	snap := newSyntheticCluster(b, nServices, nEndpoints).tracker.Snapshot()
	cfg := testConfig()
	b.ReportAllocs()
	b.ResetTimer()
	var bytes int
	for b.Loop() {
		bytes = len(Render(snap, cfg, nil).Payload)
	}
	b.ReportMetric(float64(bytes), "payload-bytes")
}

// BenchmarkRenderFull renders every service from scratch, as at start and on periodic
// full syncs. The target is under 1 s at 10k services × 10 endpoints.
func BenchmarkRenderFull(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("services=%d/endpoints=10", n), func(b *testing.B) { benchmarkRenderFull(b, n, 10) })
	}
}

// BenchmarkRenderPartial renders the change of one endpoint of one service among 10k:
// the common case of a sync. The target is under 1 ms.
func BenchmarkRenderPartial(b *testing.B) {
	c := newSyntheticCluster(b, 10000, 10)
	prev := c.tracker.Snapshot()
	slice := c.slices[4242].DeepCopy()
	slice.Endpoints[3].Conditions.Ready = new(false)
	if err := c.tracker.OnEndpointSliceUpdate(slice); err != nil {
		b.Fatal(err)
	}
	next := c.tracker.Snapshot()
	if len(next.Changed) != 1 {
		b.Fatalf("changed = %d service ports, want 1", len(next.Changed))
	}
	cfg := testConfig()
	b.ReportAllocs()
	b.ResetTimer()
	var bytes int
	for b.Loop() {
		plan := RenderPartial(prev, next, next.SortedChanged(), cfg)
		bytes = len(plan.Payload)
	}
	b.ReportMetric(float64(bytes), "payload-bytes")
}

// BenchmarkAppliedDigest hashes the full payload of 10k services × 10 endpoints as the
// Proxier does after each sync that writes, for /debug/state (proxy.DigestOf): the cost
// that work adds to a full sync. docs/engine.md quotes it.
func BenchmarkAppliedDigest(b *testing.B) {
	snap := newSyntheticCluster(b, 10000, 10).tracker.Snapshot()
	payload := Render(snap, testConfig(), nil).Payload
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for b.Loop() {
		proxy.DigestOf(payload, 1)
	}
}
