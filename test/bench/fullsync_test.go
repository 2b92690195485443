//go:build bench

package bench

// TestFullSyncBench measures what Switchyard's periodic full-sync work does at scale
// (issue 11, item 3; docs/reliability.md "Full syncs"): the time a one-endpoint change
// takes when it arrives while the periodic work runs, the periodic work's own duration
// and CPU, and connection failures of new and established TCP connections to a few
// services, probed from a client pod throughout. hack/bench-fullsync.sh runs it.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// FullSyncResults is what TestFullSyncBench writes to $BENCH_OUT/fullsync-$BENCH_TAG.json.
type FullSyncResults struct {
	Started  string             `json:"started"`
	Commit   string             `json:"commit"`
	Scale    string             `json:"scale"`
	Period   string             `json:"period"`
	Backends []*FullSyncBackend `json:"backends"`
}

// FullSyncBackend is one iptables backend's figures.
type FullSyncBackend struct {
	Backend string `json:"backend"`
	// Binary labels the build measured (BENCH_BINARIES).
	Binary string `json:"binary"`
	// Periodic lists each periodic sync (or check) the daemon logged: when it began,
	// how long it took.
	Periodic []PeriodicEvent `json:"periodic"`
	// QuietCPUSeconds is the daemon's CPU (own + children) over a window holding one
	// periodic sync and no change.
	QuietCPUSeconds float64 `json:"quiet_cpu_seconds"`
	// Changes are the one-endpoint changes made while a periodic sync was expected to
	// run.
	Changes []ChangeDuringPeriodic `json:"changes"`
	// Probe counts the probe's connections.
	Probe ProbeCounts `json:"probe"`
}

// PeriodicEvent is one periodic sync or check, from the daemon's log.
type PeriodicEvent struct {
	Start   time.Time `json:"start"`
	Seconds float64   `json:"seconds"`
	Line    string    `json:"line"`
}

// ChangeDuringPeriodic is one change and whether it fell inside a periodic sync.
type ChangeDuringPeriodic struct {
	Written time.Time `json:"written"`
	Seconds float64   `json:"seconds"`
	// During is true when the change was written between the start and the end of a
	// logged periodic sync.
	During bool `json:"during"`
}

// ProbeCounts are the probe's totals.
type ProbeCounts struct {
	NewOK             int64 `json:"new_ok"`
	NewFailed         int64 `json:"new_failed"`
	EstablishedOK     int64 `json:"established_ok"`
	EstablishedFailed int64 `json:"established_failed"`
	// FailedDuringPeriodic counts the failures (new and established) that happened
	// while a logged periodic sync ran.
	FailedDuringPeriodic int      `json:"failed_during_periodic"`
	Failures             []string `json:"failures,omitempty"`
}

func TestFullSyncBench(t *testing.T) {
	testbed.Require(t)
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		t.Skip("BENCH_OUT not set: run hack/bench-fullsync.sh")
	}
	scale, err := ParseScale(env("BENCH_SCALE", "10000x10"))
	if err != nil {
		t.Fatal(err)
	}
	period, err := time.ParseDuration(env("BENCH_FULLSYNC_PERIOD", "45s"))
	if err != nil {
		t.Fatal(err)
	}
	var rounds int
	if _, err := fmt.Sscan(env("BENCH_FULLSYNC_ROUNDS", "3"), &rounds); err != nil {
		t.Fatal(err)
	}
	root := mustRoot(t)
	binary := env("SWITCHYARD_BIN", filepath.Join(root, "bin", "switchyard"))
	tag := env("BENCH_TAG", "fullsync")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	commit, _ := os.ReadFile(filepath.Join(out, ".commit"))
	results := &FullSyncResults{Started: time.Now().UTC().Format(time.RFC3339), Commit: strings.TrimSpace(env("BENCH_COMMIT", string(commit))),
		Scale: scale.String(), Period: period.String()}
	path := filepath.Join(out, "fullsync-"+tag+".json")
	save := func() {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Errorf("writing %s: %v", path, err)
		}
	}

	ctx := t.Context()
	cluster := testbed.StartControlPlane(t)
	if out, err := cluster.Kubectl(ctx, "apply", "-f", filepath.Join(root, "manifests/deploy/rbac.yaml")); err != nil {
		t.Fatalf("applying RBAC: %v\n%s", err, out)
	}
	config, err := cluster.RESTConfig(cluster.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	config.QPS, config.Burst = 5000, 10000
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	var workers int
	if _, err := fmt.Sscan(env("BENCH_LOAD_WORKERS", "16"), &workers); err != nil {
		t.Fatal(err)
	}
	loader := &Loader{Client: client, Workers: workers}
	if err := loader.EnsureNamespace(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := loader.Parallel(ctx, 0, scale.Services, func(ctx context.Context, i int) error {
		return createWithRetries(ctx, loader, i, scale.Endpoints)
	}); err != nil {
		t.Fatalf("loading %s: %v", scale, err)
	}
	t.Logf("loaded %s in %.1fs", scale, time.Since(start).Seconds())

	// BENCH_BINARIES="label=path,..." measures several builds on the same loaded
	// cluster, one node each (before and after a change).
	binaries := [][2]string{{"switchyard", binary}}
	if list := os.Getenv("BENCH_BINARIES"); list != "" {
		binaries = nil
		for _, item := range strings.Split(list, ",") {
			label, path, _ := strings.Cut(item, "=")
			binaries = append(binaries, [2]string{label, path})
		}
	}
	k := 0
	for _, backend := range strings.Split(env("BENCH_BACKENDS", "nft"), ",") {
		for _, bin := range binaries {
			k++
			r := &FullSyncBackend{Backend: backend, Binary: bin[0]}
			results.Backends = append(results.Backends, r)
			fs := &fullSyncRun{t: t, cluster: cluster, loader: loader, scale: scale, period: period, rounds: rounds,
				binary: bin[1], backend: backend, r: r, rng: rand.New(rand.NewPCG(7, uint64(k))), changeBase: 100_000 * k,
				nodeName: fmt.Sprintf("fs%d-%s", k, backend)}
			fs.run(ctx)
			save()
		}
	}
	t.Logf("results in %s", path)
}

// fullSyncRun is one backend's run.
type fullSyncRun struct {
	t          *testing.T
	cluster    *testbed.Cluster
	loader     *Loader
	scale      Scale
	period     time.Duration
	rounds     int
	binary     string
	backend    string
	r          *FullSyncBackend
	rng        *rand.Rand
	changeBase int
	nodeName   string
}

// probePort is where the probe's backends echo: an in-process echo server listening
// in each backend pod's namespace, which keeps a connection open as long as the
// client does (the testbed's own echo server answers once and closes).
const probePort = 7000

func (f *fullSyncRun) run(ctx context.Context) {
	t := f.t
	node := f.cluster.AddNode(t, f.nodeName, nil)
	backends := []*testbed.Pod{f.cluster.AddPod(t, node, "pb1"), f.cluster.AddPod(t, node, "pb2")}
	clientPod := f.cluster.AddPod(t, node, "client")
	for _, pod := range backends {
		listener, err := testbed.SocketIn(pod.Netns, func() (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf(":%d", probePort)) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { listener.Close() })
		go serveEcho(listener)
	}
	var targets []string
	for i := range 4 {
		svc, err := f.cluster.CreateService(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("probe-%s-%d", f.nodeName, i), Namespace: "probe"},
			Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "echo", Protocol: v1.ProtocolTCP, Port: probePort,
				TargetPort: intstr.FromInt32(probePort)}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.cluster.PublishEndpoints(ctx, svc, []testbed.EndpointSpec{{Pod: backends[0]}, {Pod: backends[1]}}); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(probePort)))
	}

	// programmed reports whether Service i dispatches to address ("": to as many
	// endpoints as the scale has), read from the node's kernel: iptables-save of its
	// KUBE-SVC- chain, or the nftables service- chain over netlink.
	var programmed func(ctx context.Context, i int, address string) (bool, error)
	modeArgs := []string{"--iptables-backend", f.backend}
	if f.backend == "nftables" {
		modeArgs = []string{"--proxy-mode", "nftables"}
		probe, err := OpenNFTProbe(node.Netns)
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		programmed = func(_ context.Context, i int, address string) (bool, error) {
			endpoints, ok, err := probe.ServiceEndpoints(NFTServiceChain(i))
			if address == "" {
				return ok && len(endpoints) >= f.scale.Endpoints, err
			}
			return ok && HasEndpoint(endpoints, i, address), err
		}
	} else {
		ipt := IPTables{Netns: node.Netns, Backend: f.backend}
		programmed = func(ctx context.Context, i int, address string) (bool, error) {
			listing, ok, err := ipt.ListChain(ctx, ServiceChain(i))
			if address == "" {
				return ok && CountJumps(listing) >= f.scale.Endpoints, err
			}
			return ok && strings.Contains(listing, "-j "+EndpointChain(i, address)), err
		}
	}
	started := time.Now()
	args := append([]string{"env", "GOMAXPROCS=2", f.binary, "run",
		"--kubeconfig", f.cluster.RestrictedKubeconfig, "--hostname-override", node.Name,
		"--cluster-cidr", testbed.ClusterCIDR}, modeArgs...)
	process := node.Start(t, "switchyard-fullsync", append(args,
		"--healthz-bind-address", node.IP+":10256", "--metrics-bind-address", node.IP+":10249", "-v", "2",
		"--sync-period=1s", "--full-sync-period="+f.period.String(),
		"--conntrack-max-per-core=0", "--conntrack-min=0",
		"--conntrack-tcp-timeout-established=0s", "--conntrack-tcp-timeout-close-wait=0s")...)
	defer func() {
		if err := process.Stop(); err != nil {
			t.Logf("stopping: %v", err)
		}
	}()
	last := f.scale.Services - 1
	if _, ok, err := WaitFor(ctx, 5*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		return programmed(ctx, last, "")
	}); !ok {
		t.Fatalf("%s: not programmed within 5 min (%v)", f.backend, err)
	}
	t.Logf("%s %s: cold start %.1fs", f.r.Binary, f.backend, time.Since(started).Seconds())

	probe := &tcpProbe{netns: clientPod.Netns, targets: targets}
	// The split cold sync makes the services reachable in its last restores: count
	// only once every probe target answers.
	if _, ok, err := WaitFor(ctx, 5*time.Minute, 200*time.Millisecond, func(context.Context) (bool, error) {
		for _, target := range targets {
			conn, err := probe.dial(target)
			if err != nil {
				return false, nil
			}
			err = roundTrip(conn)
			conn.Close()
			if err != nil {
				return false, nil
			}
		}
		return true, nil
	}); !ok {
		t.Fatalf("%s: probe targets never answered (%v)", f.backend, err)
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	var probes sync.WaitGroup
	probe.start(probeCtx, &probes)
	defer func() {
		stopProbe()
		probes.Wait()
		f.r.Probe = probe.counts()
		for _, at := range probe.failedAt {
			for _, e := range f.r.Periodic {
				if !at.Before(e.Start) && at.Before(e.Start.Add(time.Duration(e.Seconds*float64(time.Second)))) {
					f.r.Probe.FailedDuringPeriodic++
					break
				}
			}
		}
		t.Logf("%s %s: probe: new %d ok / %d failed, established %d ok / %d failed; %d failures during a periodic sync", f.r.Binary, f.backend,
			f.r.Probe.NewOK, f.r.Probe.NewFailed, f.r.Probe.EstablishedOK, f.r.Probe.EstablishedFailed, f.r.Probe.FailedDuringPeriodic)
		for _, failure := range f.r.Probe.Failures {
			t.Logf("%s %s: probe failure: %s", f.r.Binary, f.backend, failure)
		}
	}()

	// Wait for the first periodic sync (or check), to learn the phase.
	prev, ok := f.waitPeriodic(ctx, process.LogPath, 0, f.period+5*time.Minute)
	if !ok {
		t.Fatalf("%s: no periodic sync logged", f.backend)
	}
	seen := 1
	// Round 0 is quiet: the CPU of one periodic sync with no change around it.
	for round := 0; round <= f.rounds; round++ {
		next := prev.Start.Add(f.period)
		offset := max(100*time.Millisecond, time.Duration(0.3*prev.Seconds*float64(time.Second)))
		if round == 0 {
			time.Sleep(time.Until(next.Add(-time.Second)))
			before, _ := ReadProcStats(process.Pid())
			event, ok := f.waitPeriodic(ctx, process.LogPath, seen, f.period+5*time.Minute)
			if !ok {
				t.Fatalf("%s: periodic sync %d not logged", f.backend, seen)
			}
			seen++
			time.Sleep(500 * time.Millisecond)
			after, _ := ReadProcStats(process.Pid())
			f.r.QuietCPUSeconds = after.CPUSeconds + after.ChildCPUSeconds - before.CPUSeconds - before.ChildCPUSeconds
			t.Logf("%s %s: quiet window around a periodic sync of %.2fs: %.2f s CPU", f.r.Binary, f.backend, event.Seconds, f.r.QuietCPUSeconds)
			prev = event
			continue
		}
		time.Sleep(time.Until(next.Add(offset)))
		i := f.rng.IntN(f.scale.Services)
		address := ChangedIP(f.changeBase + round)
		if err := f.loader.ReplaceEndpoint(ctx, i, f.scale.Endpoints, address); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		seenAt, ok, err := WaitFor(ctx, 5*time.Minute, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
			return programmed(ctx, i, address)
		})
		if !ok {
			t.Fatalf("%s: change %d not programmed within 5 min (%v)", f.backend, round, err)
		}
		event, ok := f.waitPeriodic(ctx, process.LogPath, seen, f.period+5*time.Minute)
		if !ok {
			t.Fatalf("%s: periodic sync %d not logged", f.backend, seen)
		}
		seen++
		c := ChangeDuringPeriodic{Written: written, Seconds: seenAt.Sub(written).Seconds()}
		for _, e := range f.r.Periodic {
			end := e.Start.Add(time.Duration(e.Seconds * float64(time.Second)))
			if !written.Before(e.Start) && written.Before(end) {
				c.During, event = true, e
			}
		}
		f.r.Changes = append(f.r.Changes, c)
		t.Logf("%s %s: change %d written %.2fs into a periodic sync of %.2fs (during: %v): programmed after %.3fs",
			f.r.Binary, f.backend, round, written.Sub(event.Start).Seconds(), event.Seconds, c.During, c.Seconds)
		prev = event
	}
	time.Sleep(2 * time.Second)
}

// periodicLine matches the daemon's log line of an IPv4 periodic full sync, or of
// the periodic check that replaces it, with its klog header and elapsed time (the
// benchmark Services are IPv4; the IPv6 family's periodic work is tiny).
var (
	periodicLine = regexp.MustCompile(`^I(\d{4} \d{2}:\d{2}:\d{2}\.\d{6}).*("Synced".*family="IPv4".*reason="periodic"|"Periodic check".*family="IPv4").*elapsed="?([0-9.a-zµ]+)"?`)
)

// waitPeriodic waits until the log holds more than index periodic events and returns
// event number index.
func (f *fullSyncRun) waitPeriodic(ctx context.Context, logPath string, index int, timeout time.Duration) (PeriodicEvent, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		events := readPeriodic(logPath)
		if len(events) > index {
			f.r.Periodic = events
			return events[index], true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return PeriodicEvent{}, false
}

func readPeriodic(logPath string) []PeriodicEvent {
	file, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer file.Close()
	var out []PeriodicEvent
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	year := time.Now().Year()
	for scanner.Scan() {
		m := periodicLine.FindStringSubmatch(scanner.Text())
		if m == nil {
			continue
		}
		end, err := time.ParseInLocation("2006 0102 15:04:05.000000", fmt.Sprintf("%d %s", year, m[1]), time.UTC)
		if err != nil {
			continue
		}
		elapsed, err := time.ParseDuration(m[3])
		if err != nil {
			continue
		}
		out = append(out, PeriodicEvent{Start: end.Add(-elapsed), Seconds: elapsed.Seconds(), Line: scanner.Text()[:min(len(scanner.Text()), 400)]})
	}
	return out
}

// serveEcho echoes every connection's bytes back until the client closes it.
func serveEcho(listener net.Listener) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			buf := make([]byte, 512)
			for {
				n, err := conn.Read(buf)
				if err != nil {
					return
				}
				if _, err := conn.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// tcpProbe opens new connections to every target in a loop, and keeps two
// connections per target open, sending a line and reading it back every 50 ms. Each
// connection attempt or round trip has a one-second deadline.
type tcpProbe struct {
	netns   string
	targets []string

	newOK, newFailed, estOK, estFailed atomic.Int64
	mu                                 sync.Mutex
	failures                           []string
	failedAt                           []time.Time
}

func (p *tcpProbe) fail(kind, target string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failedAt = append(p.failedAt, time.Now())
	if len(p.failures) < 100 {
		p.failures = append(p.failures, fmt.Sprintf("%s %s %s: %v", time.Now().UTC().Format("15:04:05.000"), kind, target, err))
	}
}

func (p *tcpProbe) dial(target string) (net.Conn, error) {
	return testbed.SocketIn(p.netns, func() (net.Conn, error) {
		return net.DialTimeout("tcp", target, time.Second)
	})
}

func roundTrip(conn net.Conn) error {
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
	}
	if string(buf) != "ping\n" {
		return fmt.Errorf("echo %q", buf)
	}
	return nil
}

func (p *tcpProbe) start(ctx context.Context, wg *sync.WaitGroup) {
	for _, target := range p.targets {
		wg.Go(func() {
			for ctx.Err() == nil {
				conn, err := p.dial(target)
				if err == nil {
					err = roundTrip(conn)
					conn.Close()
				}
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					p.newFailed.Add(1)
					p.fail("new", target, err)
				} else {
					p.newOK.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		for range 2 {
			wg.Go(func() {
				var conn net.Conn
				defer func() {
					if conn != nil {
						conn.Close()
					}
				}()
				for ctx.Err() == nil {
					var err error
					if conn == nil {
						if conn, err = p.dial(target); err != nil {
							conn = nil
							p.estFailed.Add(1)
							p.fail("established (reconnect)", target, err)
							time.Sleep(50 * time.Millisecond)
							continue
						}
					}
					err = roundTrip(conn)
					if ctx.Err() != nil {
						return
					}
					if err != nil {
						p.estFailed.Add(1)
						p.fail("established", target, err)
						conn.Close()
						conn = nil
					} else {
						p.estOK.Add(1)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
	}
}

func (p *tcpProbe) counts() ProbeCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProbeCounts{NewOK: p.newOK.Load(), NewFailed: p.newFailed.Load(), EstablishedOK: p.estOK.Load(),
		EstablishedFailed: p.estFailed.Load(), Failures: p.failures}
}

// createWithRetries creates Service i and its slices, taking what already exists as
// done and retrying other errors: on a loaded machine etcd times out now and then.
func createWithRetries(ctx context.Context, l *Loader, i, endpoints int) error {
	var err error
	for attempt := range 10 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * time.Second)
		}
		if _, err = l.Client.CoreV1().Services(Namespace).Create(ctx, l.Service(i), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			continue
		}
		err = nil
		for _, slice := range Slices(i, Addresses(i, endpoints), time.Now()) {
			if _, e := l.Client.DiscoveryV1().EndpointSlices(Namespace).Create(ctx, slice, metav1.CreateOptions{}); e != nil && !apierrors.IsAlreadyExists(e) {
				err = e
			}
		}
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("creating Service %d after 10 attempts: %w", i, err)
}
