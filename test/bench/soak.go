package bench

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// The churn soak (TestSoak in soakrun_test.go, make soak) samples the daemon's own
// /metrics every few seconds while Services and EndpointSlices churn, and judges
// from the samples whether its resources stay flat. This file holds the pure parts:
// the sample, its CSV form, and the flatness criteria.

// Soak phases, as the samples record them.
const (
	PhaseLoad  = "load"
	PhaseChurn = "churn"
	// PhaseCheck is after the churn: the rules are compared with the model, and the
	// harness's /debug/state polls (a JSON dump of every Service) weigh on the heap.
	PhaseCheck  = "check"
	PhaseDelete = "delete"
)

// Sample is one scrape of the daemon's /metrics, plus what the harness had written
// by then.
type Sample struct {
	// ElapsedSeconds is the time since the daemon started; Phase is the soak phase.
	ElapsedSeconds float64
	Phase          string
	// HeapInuseBytes is go_memstats_heap_inuse_bytes, HeapAllocBytes
	// go_memstats_heap_alloc_bytes, NextGCBytes go_memstats_next_gc_bytes (the heap
	// goal: twice the live heap after the last GC at GOGC=100, so the smoothest
	// view of what is retained), RSSBytes process_resident_memory_bytes.
	HeapInuseBytes, HeapAllocBytes, NextGCBytes, RSSBytes float64
	// Goroutines is go_goroutines, OpenFDs process_open_fds.
	Goroutines, OpenFDs float64
	// SyncsOK and SyncsFailed are switchyard_syncs_total by result, over both
	// families and both kinds; RestoreFailures is
	// kubeproxy_sync_proxy_rules_iptables_restore_failures_total plus its partial
	// twin. All cumulative.
	SyncsOK, SyncsFailed, RestoreFailures float64
	// SyncSecondsSum and SyncCount are kubeproxy_sync_proxy_rules_duration_seconds'
	// sum and count (successful syncs), cumulative.
	SyncSecondsSum, SyncCount float64
	// Changes is the number of churn changes the harness had written, cumulative;
	// APIErrors the writes the API server refused.
	Changes, APIErrors float64
	// Services and Endpoints are what the harness's model held, during the churn
	// only (0 in the other phases).
	Services, Endpoints float64
	// Load1 is the host's one-minute load average.
	Load1 float64
}

// sampleColumns are the CSV header, in Sample's field order.
var sampleColumns = []string{
	"elapsed_s", "phase", "heap_inuse_bytes", "heap_alloc_bytes", "next_gc_bytes", "rss_bytes",
	"goroutines", "open_fds", "syncs_ok", "syncs_failed", "restore_failures",
	"sync_seconds_sum", "sync_count", "changes", "api_errors", "services", "endpoints", "load1",
}

func (s *Sample) numbers() []*float64 {
	return []*float64{&s.ElapsedSeconds, &s.HeapInuseBytes, &s.HeapAllocBytes, &s.NextGCBytes, &s.RSSBytes,
		&s.Goroutines, &s.OpenFDs, &s.SyncsOK, &s.SyncsFailed, &s.RestoreFailures,
		&s.SyncSecondsSum, &s.SyncCount, &s.Changes, &s.APIErrors, &s.Services, &s.Endpoints, &s.Load1}
}

// MetricSum sums every series of the Prometheus text metric name (exactly that
// name, not its _sum or _bucket) whose labels contain labels ("" for any); ok is
// false when no series matched.
func MetricSum(metrics, name, labels string) (sum float64, ok bool) {
	for line := range strings.Lines(metrics) {
		rest, found := strings.CutPrefix(strings.TrimSpace(line), name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			end := strings.IndexByte(rest, '}')
			if end < 0 || !strings.Contains(rest[:end], labels) {
				continue
			}
			rest = rest[end+1:]
		} else if labels != "" {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
			sum += v
			ok = true
		}
	}
	return sum, ok
}

// ParseSample reads the daemon's figures from its /metrics text into s; it fails
// when a resource gauge is missing, since a soak without it proves nothing.
func ParseSample(metrics string, s *Sample) error {
	for _, m := range []struct {
		name, labels string
		to           *float64
	}{
		{"go_memstats_heap_inuse_bytes", "", &s.HeapInuseBytes},
		{"go_memstats_heap_alloc_bytes", "", &s.HeapAllocBytes},
		{"go_memstats_next_gc_bytes", "", &s.NextGCBytes},
		{"process_resident_memory_bytes", "", &s.RSSBytes},
		{"go_goroutines", "", &s.Goroutines},
		{"process_open_fds", "", &s.OpenFDs},
	} {
		v, ok := MetricSum(metrics, m.name, m.labels)
		if !ok {
			return fmt.Errorf("metric %s missing", m.name)
		}
		*m.to = v
	}
	// Counters with labels appear only once incremented: missing means zero.
	s.SyncsOK, _ = MetricSum(metrics, "switchyard_syncs_total", `result="success"`)
	s.SyncsFailed, _ = MetricSum(metrics, "switchyard_syncs_total", `result="error"`)
	full, _ := MetricSum(metrics, "kubeproxy_sync_proxy_rules_iptables_restore_failures_total", "")
	partial, _ := MetricSum(metrics, "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total", "")
	s.RestoreFailures = full + partial
	duration := ParseHistogram(metrics, "kubeproxy_sync_proxy_rules_duration_seconds", "")
	s.SyncSecondsSum, s.SyncCount = duration.Sum, duration.Count
	return nil
}

// WriteSamples writes samples as CSV with a header.
func WriteSamples(w io.Writer, samples []Sample) error {
	out := csv.NewWriter(w)
	if err := out.Write(sampleColumns); err != nil {
		return err
	}
	for i := range samples {
		s := &samples[i]
		row := []string{}
		for k, v := range s.numbers() {
			if k == 1 {
				row = append(row, s.Phase)
			}
			row = append(row, strconv.FormatFloat(*v, 'f', -1, 64))
		}
		if err := out.Write(row); err != nil {
			return err
		}
	}
	out.Flush()
	return out.Error()
}

// ReadSamples reads what WriteSamples wrote.
func ReadSamples(path string) ([]Sample, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	rows, err := csv.NewReader(bufio.NewReader(file)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(sampleColumns, ",") {
		return nil, fmt.Errorf("%s: header is not %s", path, strings.Join(sampleColumns, ","))
	}
	var samples []Sample
	for n, row := range rows[1:] {
		var s Sample
		s.Phase = row[1]
		values := append([]string{row[0]}, row[2:]...)
		for k, v := range s.numbers() {
			if *v, err = strconv.ParseFloat(values[k], 64); err != nil {
				return nil, fmt.Errorf("%s: row %d: %w", path, n+2, err)
			}
		}
		samples = append(samples, s)
	}
	return samples, nil
}

// Slope is the least-squares slope of y over x; NaN with fewer than two distinct x.
func Slope(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 || len(x) != len(y) {
		return math.NaN()
	}
	var sx, sy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
	}
	mx, my := sx/n, sy/n
	var sxy, sxx float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
	}
	if sxx == 0 {
		return math.NaN()
	}
	return sxy / sxx
}

// Flatness thresholds. The churn writes 20 changes/s, 12,000 per 10 minutes:
//   - live heap (half the GC heap goal, go_memstats_next_gc_bytes / 2: what the
//     last GC found reachable, plus half the stacks and globals): a leak of 400
//     bytes per change (a chain name and a map entry left behind) grows it by 4.8
//     MB per 10 minutes, so the limit on its slope over the second half of the
//     churn is 5 MB per 10 minutes. It is smooth (it moves only at a GC), so this
//     is the sharp test;
//   - heap in use saw-tooths by some ±20 MB between GC cycles at 5k Services (the
//     3-minute validation run), which gives a least-squares slope over 90 samples
//     a standard error of about 5 MB per 10 minutes: its limit is 15 (three
//     standard errors), a coarse second opinion;
//   - RSS: 10 MB per 10 minutes; it also carries the Go scavenger's lag in
//     returning freed pages;
//   - goroutines: a leak of one per sync would add thousands (about two syncs a
//     second over two families), one per watch restart a few every 10 minutes.
//     What legitimately varies is a sync in flight when the sample is taken: a
//     few goroutines copying a child's pipes. So the range (max - min) over the
//     whole churn may be at most 10;
//   - open file descriptors are judged by their floor, not their range. A sample
//     taken while children run counts their descriptors, and up to two run at
//     once: the sync's iptables-restore or iptables-save (the families sync one
//     after the other under syncMu, pkg/controller sync.go) and the canary check's
//     iptables (its own goroutine). While a child runs, the daemon holds its stderr
//     pipe, its stdin pipe until the payload is written, and its pidfd (2-3 each);
//     while os/exec starts it, both ends of its stdin and stderr pipes and /dev/null
//     for its stdout (5, or 6 with a stdout pipe), and for the one being forked
//     (syscall.ForkLock lets one fork at a time) the exec-status pipe and the pidfd
//     (3 more). That is at most 2 × 6 + 3 = 15 over the floor, plus up to 3 more
//     connections (a second scrape, /debug/state, an apiserver connection
//     re-dialled): 18. The 30-minute run of 2026-12-02 saw 11 (no child), 13 (a
//     restore running: its stderr pipe and pidfd), 15, 18-20 and once 25. A
//     3-minute soak with /proc/PID/fd read every ~15 ms (27,834 reads,
//     bench/results/2026-12-02-soak/fds-3m/) saw a floor of 10 and once 25: two
//     children being started at once, 11 pipe ends, 4 /dev/null and 2 pidfds above
//     the floor's. A leak, even of one descriptor per thousand syncs, raises the
//     floor instead: the lowest count over the last third of the churn may exceed
//     the lowest over the first third by at most 2 (a third holds 60 samples,
//     enough to catch the floor), and no sample may exceed the churn's floor by
//     more than 18.
const (
	MaxLiveHeapSlopeMBPer10Min = 5.0
	MaxHeapSlopeMBPer10Min     = 15.0
	MaxRSSSlopeMBPer10Min      = 10.0
	MaxGoroutineRange          = 10.0
	MaxOpenFDFloorRise         = 2.0
	MaxOpenFDOverFloor         = 18.0
)

// Verdict is the flatness judgement over a soak's churn phase.
type Verdict struct {
	// ChurnSamples is the number of churn samples, ChurnMinutes their span.
	ChurnSamples int
	ChurnMinutes float64
	// HeapSlope, LiveHeapSlope and RSSSlope are least-squares slopes over the second
	// half of the churn, in MB per 10 minutes, of the heap in use, of half the GC
	// heap goal (the live heap after the last GC) and of RSS.
	HeapSlope, LiveHeapSlope, RSSSlope float64
	// Mean heap in use and RSS over the second half, MB.
	HeapMeanMB, RSSMeanMB float64
	// Ranges (max - min) over the whole churn, and the extremes.
	GoroutineMin, GoroutineMax, FDMin, FDMax float64
	// FDFloorFirst and FDFloorLast are the lowest open-fd counts over the first and
	// the last third of the churn.
	FDFloorFirst, FDFloorLast float64
	// SyncsOK and SyncsFailed are counted over the churn; RestoreFailures and
	// SyncsFailedTotal over the whole run (the last sample).
	SyncsOK, SyncsFailed, SyncsFailedTotal, RestoreFailures float64
	// Changes is how many churn changes were written, ChangesPerSecond the rate
	// achieved over the churn.
	Changes, ChangesPerSecond float64
	// Problems lists every criterion not met; empty means flat.
	Problems []string
}

// Judge applies the flatness criteria to samples (all phases, in order).
func Judge(samples []Sample) Verdict {
	var churn []Sample
	for _, s := range samples {
		if s.Phase == PhaseChurn {
			churn = append(churn, s)
		}
	}
	var v Verdict
	v.ChurnSamples = len(churn)
	if len(churn) < 4 {
		v.Problems = append(v.Problems, fmt.Sprintf("only %d churn samples: too few to judge", len(churn)))
		return v
	}
	first, last := churn[0], churn[len(churn)-1]
	v.ChurnMinutes = (last.ElapsedSeconds - first.ElapsedSeconds) / 60
	second := churn[len(churn)/2:]
	const mbPer10Min = 600 / 1e6
	var x, heap, live, rss []float64
	for _, s := range second {
		x = append(x, s.ElapsedSeconds)
		heap = append(heap, s.HeapInuseBytes)
		live = append(live, s.NextGCBytes/2)
		rss = append(rss, s.RSSBytes)
		v.HeapMeanMB += s.HeapInuseBytes / 1e6 / float64(len(second))
		v.RSSMeanMB += s.RSSBytes / 1e6 / float64(len(second))
	}
	v.HeapSlope = Slope(x, heap) * mbPer10Min
	v.LiveHeapSlope = Slope(x, live) * mbPer10Min
	v.RSSSlope = Slope(x, rss) * mbPer10Min
	v.GoroutineMin, v.GoroutineMax = math.Inf(1), math.Inf(-1)
	v.FDMin, v.FDMax = math.Inf(1), math.Inf(-1)
	for _, s := range churn {
		v.GoroutineMin, v.GoroutineMax = min(v.GoroutineMin, s.Goroutines), max(v.GoroutineMax, s.Goroutines)
		v.FDMin, v.FDMax = min(v.FDMin, s.OpenFDs), max(v.FDMax, s.OpenFDs)
	}
	v.SyncsOK = last.SyncsOK - first.SyncsOK
	v.SyncsFailed = last.SyncsFailed - first.SyncsFailed
	// The counters are cumulative; the largest value seen is the run's total even if
	// the last scrape is missing.
	for _, s := range samples {
		v.SyncsFailedTotal, v.RestoreFailures = max(v.SyncsFailedTotal, s.SyncsFailed), max(v.RestoreFailures, s.RestoreFailures)
	}
	v.Changes = last.Changes - first.Changes
	if span := last.ElapsedSeconds - first.ElapsedSeconds; span > 0 {
		v.ChangesPerSecond = v.Changes / span
	}

	problem := func(format string, args ...any) { v.Problems = append(v.Problems, fmt.Sprintf(format, args...)) }
	if !(v.LiveHeapSlope < MaxLiveHeapSlopeMBPer10Min) {
		problem("live heap grows %.2f MB/10 min over the second half (limit %.0f)", v.LiveHeapSlope, MaxLiveHeapSlopeMBPer10Min)
	}
	if !(v.HeapSlope < MaxHeapSlopeMBPer10Min) {
		problem("heap in use grows %.2f MB/10 min over the second half (limit %.0f)", v.HeapSlope, MaxHeapSlopeMBPer10Min)
	}
	if !(v.RSSSlope < MaxRSSSlopeMBPer10Min) {
		problem("RSS grows %.2f MB/10 min over the second half (limit %.0f)", v.RSSSlope, MaxRSSSlopeMBPer10Min)
	}
	if r := v.GoroutineMax - v.GoroutineMin; r > MaxGoroutineRange {
		problem("goroutines range over %.0f (%.0f..%.0f) during the churn (limit %.0f)", r, v.GoroutineMin, v.GoroutineMax, MaxGoroutineRange)
	}
	v.FDFloorFirst, v.FDFloorLast = math.Inf(1), math.Inf(1)
	for k, s := range churn {
		if k < len(churn)/3 {
			v.FDFloorFirst = min(v.FDFloorFirst, s.OpenFDs)
		}
		if k >= len(churn)-len(churn)/3 {
			v.FDFloorLast = min(v.FDFloorLast, s.OpenFDs)
		}
	}
	if rise := v.FDFloorLast - v.FDFloorFirst; rise > MaxOpenFDFloorRise {
		problem("open fds floor rose by %.0f (%.0f over the first third of the churn, %.0f over the last; limit %.0f)", rise, v.FDFloorFirst, v.FDFloorLast, MaxOpenFDFloorRise)
	}
	if over := v.FDMax - v.FDMin; over > MaxOpenFDOverFloor {
		problem("open fds %.0f over the floor (%.0f..%.0f) during the churn (limit %.0f)", over, v.FDMin, v.FDMax, MaxOpenFDOverFloor)
	}
	if v.SyncsFailedTotal > 0 || v.RestoreFailures > 0 {
		problem("%.0f failed syncs and %.0f failed restores", v.SyncsFailedTotal, v.RestoreFailures)
	}
	if v.SyncsOK == 0 {
		problem("no successful sync during the churn")
	}
	for k := 1; k < len(churn); k++ {
		if churn[k].SyncsOK == churn[k-1].SyncsOK && churn[k].Changes > churn[k-1].Changes {
			problem("no successful sync between %.0f s and %.0f s although changes were written", churn[k-1].ElapsedSeconds, churn[k].ElapsedSeconds)
		}
	}
	return v
}

// BaseChains are the chains Switchyard's iptables mode keeps with no Service at all,
// per table: the dispatch, node-port, masquerade, forward and firewall chains every
// sync owns (pkg/iptables names.go), the canary (pkg/xtables) and kubelet's
// KUBE-FIREWALL, which kube-proxy and Switchyard ensure with its jumps whatever the
// settings. Anything else named KUBE- after everything is deleted is a leftover.
var BaseChains = map[string][]string{
	"nat": {iptables.ChainServices, iptables.ChainNodePorts, iptables.ChainPostrouting, iptables.ChainMarkMasq,
		string(xtables.ChainCanary)},
	"filter": {iptables.ChainServices, iptables.ChainExternalServices, iptables.ChainNodePorts, iptables.ChainForward,
		iptables.ChainProxyFirewall, iptables.ChainKubeletFirewall, string(xtables.ChainCanary)},
	"mangle": {string(xtables.ChainCanary)},
}

// SaveChains returns the KUBE- chains declared in iptables-save output, as
// "table/CHAIN", sorted.
func SaveChains(save string) []string {
	var chains []string
	table := ""
	for line := range strings.Lines(save) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":KUBE-"):
			chains = append(chains, table+"/"+strings.Fields(line[1:])[0])
		}
	}
	slices.Sort(chains)
	return chains
}

// WantBaseChains is BaseChains as "table/CHAIN", sorted.
func WantBaseChains() []string {
	var chains []string
	for table, names := range BaseChains {
		for _, name := range names {
			chains = append(chains, table+"/"+name)
		}
	}
	slices.Sort(chains)
	return chains
}

// NormalizeSave returns iptables-save output as sorted "table: line" entries,
// without comments, COMMIT lines and chain counters, so that two saves of the same
// rules compare equal whatever order the backend lists chains in.
func NormalizeSave(save string) []string {
	var lines []string
	table := ""
	for line := range strings.Lines(save) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			lines = append(lines, table+": "+strings.Fields(line)[0])
		default:
			lines = append(lines, table+": "+line)
		}
	}
	slices.Sort(lines)
	return lines
}
