package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// servicePort names benchmark Service i's port as the proxies hash it.
func servicePort(i int) endpoints.ServicePortName {
	return endpoints.ServicePortName{
		NamespacedName: types.NamespacedName{Namespace: Namespace, Name: ServiceName(i)},
		Port:           PortName,
		Protocol:       v1.ProtocolTCP,
	}
}

// ServiceChain is the KUBE-SVC- chain of Service i (kube-proxy's and Switchyard's).
func ServiceChain(i int) string { return iptables.ServiceChain(servicePort(i)) }

// EndpointChain is the KUBE-SEP- chain of Service i's endpoint at address.
func EndpointChain(i int, address string) string {
	return iptables.EndpointChain(servicePort(i), fmt.Sprintf("%s:%d", address, TargetPort))
}

// IPTables runs one backend's iptables programs in a network namespace.
type IPTables struct {
	Netns   string
	Backend string // "nft" or "legacy"
}

func (t IPTables) command(ctx context.Context, program string, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", t.Netns, program}, args...)
	return exec.CommandContext(ctx, "ip", argv...)
}

// ListChain returns `iptables -t nat -S chain`, or ok=false when the chain is missing.
func (t IPTables) ListChain(ctx context.Context, chain string) (string, bool, error) {
	cmd := t.command(ctx, "iptables-"+t.Backend, "-w", "5", "-t", "nat", "-S", chain)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// iptables-nft 1.8.9 calls a chain "incompatible" when its table does not
		// exist yet.
		if msg := stderr.String(); strings.Contains(msg, "No chain") || strings.Contains(msg, "does not exist") || strings.Contains(msg, "incompatible") {
			return "", false, nil
		}
		return "", false, fmt.Errorf("iptables-%s -t nat -S %s in %s: %w: %s", t.Backend, chain, t.Netns, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), true, nil
}

// Save returns `iptables-save -t nat`.
func (t IPTables) Save(ctx context.Context) ([]byte, error) {
	cmd := t.command(ctx, "iptables-"+t.Backend+"-save", "-t", "nat")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("iptables-%s-save in %s: %w: %s", t.Backend, t.Netns, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Restore feeds payload to iptables-restore, with --noflush if asked, and returns how
// long it took.
func (t IPTables) Restore(ctx context.Context, payload []byte, noflush bool) (time.Duration, error) {
	args := []string{"-w", "5"}
	if noflush {
		args = append(args, "--noflush")
	}
	cmd := t.command(ctx, "iptables-"+t.Backend+"-restore", args...)
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return elapsed, fmt.Errorf("iptables-%s-restore in %s: %w: %s", t.Backend, t.Netns, err, strings.TrimSpace(stderr.String()))
	}
	return elapsed, nil
}

// CountJumps counts the rules in `-S` output that jump to a KUBE-SEP- chain.
func CountJumps(listing string) int { return strings.Count(listing, "-j KUBE-SEP-") }

// WaitFor polls check every interval until it reports done, the context ends or
// timeout passes; it returns when done was first seen, or ok=false on timeout with
// the last error check returned (errors are retried: a listing can fail while a proxy
// rewrites the table).
func WaitFor(ctx context.Context, timeout, interval time.Duration, check func(context.Context) (bool, error)) (time.Time, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		done, err := check(ctx)
		if ctx.Err() != nil {
			return time.Time{}, false, last
		}
		if err != nil {
			last = err
		} else if done {
			return time.Now(), true, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false, last
		case <-time.After(interval):
		}
	}
}

// ProcStats are a process's resource figures from /proc.
type ProcStats struct {
	// PeakRSSBytes is VmHWM.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// RSSBytes is VmRSS.
	RSSBytes int64 `json:"rss_bytes"`
	// CPUSeconds is the process's own user+system time.
	CPUSeconds float64 `json:"cpu_seconds"`
	// ChildCPUSeconds is the user+system time of its waited-for children
	// (iptables-restore and friends).
	ChildCPUSeconds float64 `json:"child_cpu_seconds"`
}

// ReadProcStats reads /proc/pid/status and /proc/pid/stat.
func ReadProcStats(pid int) (ProcStats, error) {
	var stats ProcStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return stats, err
	}
	scanner := bufio.NewScanner(bytes.NewReader(status))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			stats.PeakRSSBytes = kb << 10
		case "VmRSS:":
			stats.RSSBytes = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stats, err
	}
	// Fields after the parenthesised command name; utime is field 14 (index 11 here).
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	fields := strings.Fields(string(rest))
	if len(fields) < 15 {
		return stats, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	ticks := func(i int) float64 { v, _ := strconv.ParseFloat(fields[i], 64); return v / 100 }
	stats.CPUSeconds = ticks(11) + ticks(12)
	stats.ChildCPUSeconds = ticks(13) + ticks(14)
	return stats, nil
}

// Histogram is one Prometheus histogram's sum and count.
type Histogram struct {
	Sum   float64
	Count float64
}

// ParseHistogram sums name_sum and name_count over the series whose labels contain
// the given text (e.g. `sync="partial"`; "" for every series) in Prometheus text
// output. kube-proxy labels its programming latency by ip_family, Switchyard does not.
func ParseHistogram(metrics, name, labels string) Histogram {
	var h Histogram
	for line := range strings.Lines(metrics) {
		line = strings.TrimSpace(line)
		for _, part := range []struct {
			key string
			to  *float64
		}{{name + "_sum", &h.Sum}, {name + "_count", &h.Count}} {
			rest, ok := strings.CutPrefix(line, part.key)
			if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
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
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				*part.to += v
			}
		}
	}
	return h
}

// Sub returns h - before.
func (h Histogram) Sub(before Histogram) Histogram {
	return Histogram{Sum: h.Sum - before.Sum, Count: h.Count - before.Count}
}

// Mean is Sum/Count, NaN without observations.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / h.Count
}

// Quantile returns the q-quantile (0..1) of values by the nearest-rank method, NaN
// for none.
func Quantile(values []float64, q float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// LoadAverage returns the first three fields of /proc/loadavg.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
