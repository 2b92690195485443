//go:build bench

package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// newServiceBase is the first Service index the new-service phase creates, far above
// any scale's own Services and the steady phase's adds.
const newServiceBase = 900000

// newService measures the time to a new service (issue 12 item 4): a Service and its
// EndpointSlice are created back to back, as the EndpointSlice controller does within
// milliseconds of a Service with a selector, and the clock runs from both create calls
// having returned to a real TCP connection to the cluster IP succeeding from the node.
// The endpoints are the addresses of one pod on the contender's node (one address per
// endpoint, all on the pod's interface), so every endpoint answers.
func (b *run) newService(name string, c *Contender, node *testbed.Node) {
	t, ctx := b.t, b.t.Context()
	scale := b.r.Scale
	pod := b.cluster.AddPod(t, node, "newsvc")
	addresses := []string{pod.IP}
	for j := 1; j < scale.Endpoints; j++ {
		address := fmt.Sprintf("10.244.%d.%d", node.Index, 200+j)
		if _, err := pod.Exec(ctx, "ip", "addr", "add", address+"/32", "dev", "sy-eth0"); err != nil {
			t.Errorf("%s: new service: adding %s to the pod: %v", name, address, err)
			return
		}
		addresses = append(addresses, address)
	}
	const pause = 1100 * time.Millisecond // past both proxies' 1 s minimum sync period
	// Before each create: the previous sample's delete took two syncs one minimum
	// interval apart (its slice, then its Service), so wait out both and one more
	// interval, and the create finds the proxy idle, as a new service on a quiet node
	// does.
	const settle = 3 * time.Second
	for k := range b.s.newServices {
		i := newServiceBase + b.nodes*100 + k
		time.Sleep(settle)
		service, err := b.loader.Client.CoreV1().Services(Namespace).Create(ctx, b.loader.Service(i), metav1.CreateOptions{})
		if err != nil {
			t.Errorf("%s: new service: %v", name, err)
			return
		}
		if _, err := b.loader.Client.DiscoveryV1().EndpointSlices(Namespace).Create(ctx, Slices(i, addresses, time.Now())[0], metav1.CreateOptions{}); err != nil {
			t.Errorf("%s: new service: %v", name, err)
			return
		}
		written := time.Now()
		seen, err := firstConnection(ctx, node.Netns, net.JoinHostPort(service.Spec.ClusterIP, "80"), time.Minute)
		if err != nil {
			t.Errorf("%s: new service %s: %v", name, ServiceName(i), err)
			return
		}
		c.NewServiceSeconds = append(c.NewServiceSeconds, seen.Sub(written).Seconds())
		time.Sleep(pause)
		if err := b.loader.DeleteService(ctx, i, scale.Endpoints); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
	}
	t.Logf("%s: new service, create to connection, p50 %.3fs p90 %.3fs over %d", name,
		Quantile(c.NewServiceSeconds, .5), Quantile(c.NewServiceSeconds, .9), len(c.NewServiceSeconds))
}

// firstConnection opens a TCP connection to addr from netns every few milliseconds,
// each attempt with its own short timeout and several in flight, and returns when the
// first one succeeded. Before the rules exist an attempt hangs (or is rejected), so
// attempts overlap to keep the resolution near the interval.
func firstConnection(ctx context.Context, netns, addr string, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const interval, attemptTimeout = 5 * time.Millisecond, 300 * time.Millisecond
	done := make(chan time.Time, 1)
	var attempts sync.WaitGroup
	defer attempts.Wait()
	defer cancel()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		attempts.Go(func() {
			attemptCtx, cancelAttempt := context.WithTimeout(ctx, attemptTimeout)
			defer cancelAttempt()
			conn, err := testbed.SocketIn(netns, func() (net.Conn, error) {
				var dialer net.Dialer
				return dialer.DialContext(attemptCtx, "tcp", addr)
			})
			if err != nil {
				return
			}
			now := time.Now()
			conn.Close()
			select {
			case done <- now:
			default:
			}
		})
		select {
		case seen := <-done:
			return seen, nil
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no connection to %s from %s within %s", addr, netns, timeout)
		case <-ticker.C:
		}
	}
}

// churnLatency measures network programming latency under churn (issue 12 item 3):
// s.churnRate endpoint changes per second for s.churnDuration, each on a distinct
// Service (so no change is coalesced away before it reaches the kernel), each
// replacing endpoint 0 with a fresh address. Every change is timed from outside, from
// its write returning to the first rule naming its new KUBE-SEP- chain committed in the
// kernel, as `nft monitor rules` in the node's namespace reports it: nft contenders
// only.
func (b *run) churnLatency(name string, c *Contender, p *proxy, node *testbed.Node) {
	t, ctx := b.t, b.t.Context()
	scale := b.r.Scale
	if !strings.HasSuffix(name, "-nft") {
		t.Logf("%s: churn latency is read with nft monitor; skipped for this backend", name)
		return
	}
	count := int(b.s.churnRate * b.s.churnDuration.Seconds())
	if count > scale.Services {
		count = scale.Services
	}
	monitorCtx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	monitor := exec.CommandContext(monitorCtx, "ip", "netns", "exec", node.Netns, "nft", "monitor", "rules")
	var monitorErr strings.Builder
	monitor.Stderr = &monitorErr
	stdout, err := monitor.StdoutPipe()
	if err != nil {
		t.Errorf("%s: churn: %v", name, err)
		return
	}
	if err := monitor.Start(); err != nil {
		t.Errorf("%s: churn: starting nft monitor: %v", name, err)
		return
	}
	var (
		mu   sync.Mutex
		seen SEPSeen
	)
	monitorDone := make(chan struct{})
	var monitorLines int
	var scanErr error
	go func() {
		defer close(monitorDone)
		lines := bufio.NewScanner(stdout)
		lines.Buffer(make([]byte, 1<<20), 16<<20)
		for lines.Scan() {
			mu.Lock()
			monitorLines++
			seen.Line(lines.Text())
			mu.Unlock()
		}
		scanErr = lines.Err()
		_, _ = io.Copy(io.Discard, stdout)
	}()
	// nft monitor reads the whole ruleset before it reports anything, which takes
	// seconds at this scale, and starts over whenever the ruleset changes meanwhile:
	// add a rule to a table of its own, wait for it to be reported, and add another
	// only after a long pause.
	probe := func(args ...string) error {
		return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", node.Netns, "nft"}, args...)...).Run()
	}
	if err := probe("add table ip sybenchprobe; add chain ip sybenchprobe c"); err != nil {
		t.Errorf("%s: churn: %v", name, err)
		return
	}
	defer func() { _ = probe("delete table ip sybenchprobe") }()
	ready := false
	// 30 s apart: on a loaded 2-core machine the read of a 3k x 10 ruleset took longer
	// than 10 s, and a probe every 10 s kept restarting it.
	for attempt := 0; !ready && attempt < 6; attempt++ {
		if err := probe("add rule ip sybenchprobe c counter"); err != nil {
			t.Errorf("%s: churn: %v", name, err)
			return
		}
		for wait := time.Now().Add(30 * time.Second); !ready && time.Now().Before(wait); {
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			ready = monitorLines > 0
			mu.Unlock()
		}
	}
	if !ready {
		t.Errorf("%s: churn: nft monitor reported nothing within three minutes: %s", name, strings.TrimSpace(monitorErr.String()))
		return
	}

	before := p.metrics(ctx)
	picks := b.rng.Perm(scale.Services)[:count]
	base := int(b.changeN.Add(int64(count))) - count
	chains := make([]string, count)
	written := make([]time.Time, count)
	var writes sync.WaitGroup
	failed := 0
	var failedMu sync.Mutex
	interval := time.Duration(float64(time.Second) / b.s.churnRate)
	start := time.Now()
	for k, i := range picks {
		// Paced from the start, not from the previous write: a slow write does not
		// lower the rate.
		if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		address := ChangedIP(base + k + 1)
		chains[k] = EndpointChain(i, address)
		writes.Go(func() {
			addresses := Addresses(i, scale.Endpoints)
			addresses[0] = address
			// Unconditional (no resourceVersion): this phase is the slice's only writer.
			_, err := b.loader.Client.DiscoveryV1().EndpointSlices(Namespace).Update(ctx, Slices(i, addresses, time.Now())[0], metav1.UpdateOptions{})
			now := time.Now()
			failedMu.Lock()
			defer failedMu.Unlock()
			if err != nil {
				failed++
				return
			}
			written[k] = now
		})
	}
	writes.Wait()
	elapsed := time.Since(start)
	// Wait until every change is seen, or a minute after the last write.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		mu.Lock()
		missing := 0
		for k, chain := range chains {
			if _, ok := seen.First(chain); !ok && !written[k].IsZero() {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	after := p.metrics(ctx)
	stopMonitor()
	<-monitorDone
	_ = monitor.Wait()

	if scanErr != nil || monitorErr.Len() > 0 {
		t.Logf("%s: churn: nft monitor: %v %s", name, scanErr, strings.TrimSpace(monitorErr.String()))
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%s: churn: nft monitor read %d lines", name, monitorLines)
	missed := 0
	for k, chain := range chains {
		if written[k].IsZero() {
			continue
		}
		first, ok := seen.First(chain)
		if !ok {
			missed++
			continue
		}
		// The proxy can see the change before the write's response arrives here.
		c.ChurnSeconds = append(c.ChurnSeconds, max(0, first.Sub(written[k]).Seconds()))
	}
	c.ChurnRate = float64(count) / elapsed.Seconds()
	c.ChurnMissed = missed + failed
	programming := ParseHistogram(after, "kubeproxy_network_programming_duration_seconds", "").
		Sub(ParseHistogram(before, "kubeproxy_network_programming_duration_seconds", ""))
	c.ChurnProgrammingMean = Opt(programming.Mean())
	c.Notes = append(c.Notes, fmt.Sprintf("churn: %d endpoint changes on distinct Services at %.1f/s over %.1fs; %d write errors, %d never seen in the kernel within a minute", count, c.ChurnRate, elapsed.Seconds(), failed, missed))
	t.Logf("%s: churn %d changes at %.1f/s: p50 %.3fs p99 %.3fs (%d missed, proxy's own mean %.3fs)", name, count, c.ChurnRate,
		Quantile(c.ChurnSeconds, .5), Quantile(c.ChurnSeconds, .99), c.ChurnMissed, programming.Mean())
}
