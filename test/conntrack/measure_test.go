//go:build linux

package conntrack

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// usage is what one call cost the process.
type usage struct {
	elapsed time.Duration
	// allocated is the bytes allocated on the Go heap during the call.
	allocated uint64
	// peakHeap is the highest live Go heap seen during the call (sampled every
	// millisecond) above the live heap before it.
	peakHeap uint64
	// peakRSS is the process's peak resident set size during the call (VmHWM, reset
	// before it through /proc/self/clear_refs) above its resident size before it.
	peakRSS int64
}

func (u usage) String() string {
	return fmt.Sprintf("allocated %s, peak live heap +%s, peak RSS +%s", mib(int64(u.allocated)), mib(int64(u.peakHeap)), mib(u.peakRSS))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// measure runs fn and reports its time and memory.
func measure(fn func()) usage {
	runtime.GC()
	debug.FreeOSMemory()
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	allocs0, live0 := sample[0].Value.Uint64(), sample[1].Value.Uint64()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM to VmRSS
	rss0 := procStatus("VmRSS")

	var peak uint64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak {
				peak = v
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	fn()
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	metrics.Read(sample)
	u := usage{elapsed: elapsed, allocated: sample[0].Value.Uint64() - allocs0, peakRSS: procStatus("VmHWM") - rss0}
	if peak > live0 {
		u.peakHeap = peak - live0
	}
	return u
}

// procStatus reads a "kB" line of /proc/self/status, in bytes.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
