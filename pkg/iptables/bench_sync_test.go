package iptables

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// sinkKernel is an xtables.Interface for benchmarks: it drains every restore, as
// iptables-restore's stdin would, and splits like the nft backend (ChainLimiter). It
// holds no state, so a benchmark's memory is the Proxier's own. It is not a fake:
// tests use pkg/xtables/testing.
type sinkKernel struct {
	bytes, restores int
}

func (k *sinkKernel) Restore(_ context.Context, payload []byte) error {
	k.bytes += len(payload)
	k.restores++
	return nil
}

func (k *sinkKernel) RestoreFrom(_ context.Context, write func(io.Writer) error) error {
	k.restores++
	n := &countingWriter{}
	err := write(n)
	k.bytes += n.n
	return err
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func (*sinkKernel) ChainNames(context.Context, xtables.Table) ([]string, error) { return nil, nil }
func (*sinkKernel) ChainExists(context.Context, xtables.Table, xtables.Chain) (bool, error) {
	return true, nil
}
func (*sinkKernel) EnsureChain(context.Context, xtables.Table, xtables.Chain) error { return nil }
func (*sinkKernel) EnsureRule(context.Context, xtables.Table, xtables.Chain, ...string) error {
	return nil
}
func (*sinkKernel) DeleteRule(context.Context, xtables.Table, xtables.Chain, ...string) error {
	return nil
}
func (*sinkKernel) DeleteChain(context.Context, xtables.Table, xtables.Chain) error { return nil }
func (*sinkKernel) MaxChainsPerRestore() int                                        { return 1000 }

// peakHeap samples the live heap objects' size every millisecond until stop is
// called, and returns the largest sample: a benchmark's peak, which is what RSS
// follows (allocations per op say nothing about how much is live at once).
func peakHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Go(func() {
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-ticker.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// BenchmarkSyncFull runs the Proxier's full sync of 10k services × 10 endpoints
// against a kernel that drains each restore and splits like iptables-nft: render,
// split and apply, the daemon's peak memory. It reports the peak live heap during
// the syncs (base-heap-MB is the cluster and snapshot alone) beside the allocations; run it with -memprofile for the heap profile
// (bench/results/2026-12-02-mem/).
func BenchmarkSyncFull(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d/endpoints=10", n), func(b *testing.B) {
			snap := newSyntheticCluster(b, n, 10).tracker.Snapshot()
			kernel := &sinkKernel{}
			p, err := NewProxier(testConfig(), kernel, time.Hour, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			runtime.GC()
			base := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			metrics.Read(base)
			stop := peakHeap()
			b.ResetTimer()
			for b.Loop() {
				p.RequestFullSync("benchmark")
				if _, err := p.SyncDetailed(b.Context(), snap); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(base[0].Value.Uint64())/(1<<20), "base-heap-MB")
			b.ReportMetric(float64(kernel.bytes)/float64(b.N), "restore-bytes/op")
		})
	}
}
