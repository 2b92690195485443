package nftables

import (
	"fmt"
	"testing"

	discovery "k8s.io/api/discovery/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// benchSnapshot is nServices ClusterIP services with nEndpoints endpoints each, spread
// over two nodes.
func benchSnapshot(tb testing.TB, nServices, nEndpoints int) (*endpoints.Tracker, *endpoints.Snapshot) {
	tb.Helper()
	tracker := endpoints.NewTracker(testNode)
	for i := range nServices {
		name := fmt.Sprintf("svc-%d", i)
		if err := tracker.OnServiceUpdate(makeService("bench", name, fmt.Sprintf("172.30.%d.%d", i/250, i%250+1))); err != nil {
			tb.Fatal(err)
		}
		if err := tracker.OnEndpointSliceUpdate(benchSlice(i, nEndpoints, 0)); err != nil {
			tb.Fatal(err)
		}
	}
	return tracker, tracker.Snapshot()
}

func benchSlice(i, nEndpoints, extra int) *discovery.EndpointSlice {
	eps := make([]ep, nEndpoints+extra)
	for j := range eps {
		n := i*(nEndpoints+1) + j
		node := testNode
		if j%2 == 1 {
			node = otherNode
		}
		eps[j] = ep{IP: fmt.Sprintf("10.%d.%d.%d", 100+n/62500, n/250%250, n%250+1), Node: node}
	}
	return makeSlice("bench", fmt.Sprintf("svc-%d", i), fmt.Sprintf("svc-%d-abc", i), 8080, eps...)
}

// BenchmarkRenderFull is the pure full render (transaction built, not applied) at
// 1000 × 10; `-bench RenderFull -benchtime 3x` for a first idea, nft-bench for more.
func BenchmarkRenderFull(b *testing.B) {
	_, snap := benchSnapshot(b, 1000, 10)
	cfg := testConfig()
	b.ReportAllocs()
	for b.Loop() {
		fake := newFake(cfg)
		Render(fake.NewTransaction, snap, cfg, EmptyKernel())
	}
}

// BenchmarkRenderPartialOneEndpoint is the partial render of one endpoint added to
// one of 1000 services.
func BenchmarkRenderPartialOneEndpoint(b *testing.B) {
	tracker, prev := benchSnapshot(b, 1000, 10)
	cfg := testConfig()
	fake := newFake(cfg)
	full := Render(fake.NewTransaction, prev, cfg, EmptyKernel())
	if err := tracker.OnEndpointSliceUpdate(benchSlice(500, 10, 1)); err != nil {
		b.Fatal(err)
	}
	next := tracker.Snapshot()
	changed, _ := next.SortedChangedSince(prev)
	b.ReportAllocs()
	for b.Loop() {
		RenderPartial(fake.NewTransaction(), prev, next, changed, cfg, full.elements)
	}
}
