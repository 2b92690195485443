//go:build bench

package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// Settings come from the environment; hack/bench-sync.sh and hack/bench-full.sh set
// them.
type settings struct {
	scales      []Scale
	contenders  []string
	changes     int
	burst       int
	coldCap     time.Duration
	noflushCap  time.Duration
	incremental bool
	out         string
	tag         string
	binary      string
	// baseBinary is the Switchyard binary of the "switchyard-base-<backend>"
	// contenders (BENCH_BASE_BIN): a build from before a change, measured in the
	// same run as the change.
	baseBinary string
	// steady runs the one-change, add/delete and burst phases (BENCH_STEADY, default
	// 1); newServices, churnRate and churnDuration the phases of newsvc_bench_test.go
	// (BENCH_NEWSVC samples, BENCH_CHURN_RATE changes per second, BENCH_CHURN_DURATION;
	// 0 skips them).
	steady        bool
	newServices   int
	churnRate     float64
	churnDuration time.Duration
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func readSettings(t *testing.T) settings {
	var s settings
	for _, text := range strings.Split(env("BENCH_SCALES", "1000x10"), ",") {
		scale, err := ParseScale(strings.TrimSpace(text))
		if err != nil {
			t.Fatal(err)
		}
		s.scales = append(s.scales, scale)
	}
	s.contenders = strings.Split(env("BENCH_CONTENDERS", "switchyard-nft,switchyard-legacy,kube-proxy-nft"), ",")
	var err error
	if s.changes, err = strconv.Atoi(env("BENCH_CHANGES", "50")); err != nil {
		t.Fatal(err)
	}
	if s.burst, err = strconv.Atoi(env("BENCH_BURST", "1000")); err != nil {
		t.Fatal(err)
	}
	if s.coldCap, err = time.ParseDuration(env("BENCH_COLD_CAP", "5m")); err != nil {
		t.Fatal(err)
	}
	if s.noflushCap, err = time.ParseDuration(env("BENCH_NOFLUSH_CAP", "120s")); err != nil {
		t.Fatal(err)
	}
	s.incremental = env("BENCH_INCREMENTAL", "1") == "1"
	s.steady = env("BENCH_STEADY", "1") == "1"
	if s.newServices, err = strconv.Atoi(env("BENCH_NEWSVC", "0")); err != nil {
		t.Fatal(err)
	}
	if s.churnRate, err = strconv.ParseFloat(env("BENCH_CHURN_RATE", "0"), 64); err != nil {
		t.Fatal(err)
	}
	if s.churnDuration, err = time.ParseDuration(env("BENCH_CHURN_DURATION", "60s")); err != nil {
		t.Fatal(err)
	}
	s.out = env("BENCH_OUT", "")
	if s.out == "" {
		t.Skip("BENCH_OUT not set: run hack/bench-sync.sh or hack/bench-full.sh")
	}
	s.tag = env("BENCH_TAG", "run")
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s.binary = env("SWITCHYARD_BIN", filepath.Join(root, "bin", "switchyard"))
	s.baseBinary = env("BENCH_BASE_BIN", "")
	return s
}

// TestSyncBench runs every contender at every scale and writes
// $BENCH_OUT/results-$BENCH_TAG.json after each contender.
func TestSyncBench(t *testing.T) {
	testbed.Require(t)
	s := readSettings(t)
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		t.Fatal(err)
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	host, _ := os.Hostname()
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	results := &Results{
		Started: time.Now().UTC().Format(time.RFC3339), Host: host,
		Kernel: strings.TrimSpace(string(kernel)), Commit: strings.TrimSpace(string(commit)),
		LoadAtStart: LoadAverage(),
	}
	path := filepath.Join(s.out, "results-"+s.tag+".json")
	save := func() {
		if err := results.Write(path); err != nil {
			t.Errorf("writing %s: %v", path, err)
		}
	}
	for _, scale := range s.scales {
		t.Run(scale.String(), func(t *testing.T) {
			r := &ScaleResult{Scale: scale}
			results.Scales = append(results.Scales, r)
			runScale(t, s, r, save)
			save()
		})
	}
	t.Logf("results in %s", path)
}

// run is one scale's state.
type run struct {
	t       *testing.T
	s       settings
	r       *ScaleResult
	cluster *testbed.Cluster
	loader  *Loader
	rng     *rand.Rand
	changeN atomic.Int64
	nodes   int
}

func runScale(t *testing.T, s settings, r *ScaleResult, save func()) {
	ctx := t.Context()
	cluster := testbed.StartControlPlane(t)
	if out, err := cluster.Kubectl(ctx, "apply", "-f", filepath.Join(mustRoot(t), "manifests/deploy/rbac.yaml")); err != nil {
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
	b := &run{t: t, s: s, r: r, cluster: cluster, loader: &Loader{Client: client, Workers: 48}, rng: rand.New(rand.NewPCG(1, uint64(r.Scale.Services)))}
	if err := b.loader.EnsureNamespace(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := b.loader.Load(ctx, 0, r.Scale.Services, r.Scale.Endpoints); err != nil {
		t.Fatalf("loading %s: %v", r.Scale, err)
	}
	r.LoadSeconds = time.Since(start).Seconds()
	t.Logf("loaded %s in %.1fs (load average %s)", r.Scale, r.LoadSeconds, LoadAverage())
	save()

	var reference *testbed.Node
	for _, name := range s.contenders {
		c, node := b.contender(name)
		r.Contenders = append(r.Contenders, c)
		r.LoadAverages = append(r.LoadAverages, name+": "+LoadAverage())
		if reference == nil && node != nil && strings.HasSuffix(name, "-nft") {
			reference = node
		}
		save()
	}
	if reference != nil {
		b.floors(reference)
	}
}

func mustRoot(t *testing.T) string {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// proxy is a running contender.
type proxy struct {
	process    *testbed.Process
	metricsURL string
	pprofURL   string
	client     *http.Client
}

func (p *proxy) metrics(ctx context.Context) string {
	request, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	response, err := p.client.Do(request)
	if err != nil {
		return ""
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	return string(body)
}

const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %q
  qps: 50
  burst: 100
hostnameOverride: %q
bindAddress: %q
clusterCIDR: %q
mode: iptables
healthzBindAddress: "%s:10256"
metricsBindAddress: "%s:10249"
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`

// start launches contender name ("switchyard-nft", "kube-proxy-legacy", ...) on node.
func (b *run) start(name string, node *testbed.Node) *proxy {
	kind, backend, _ := strings.Cut(name, "-")
	if kind == "kube" {
		kind, backend = "kube-proxy", strings.TrimPrefix(name, "kube-proxy-")
	}
	binary := b.s.binary
	if rest, ok := strings.CutPrefix(name, "switchyard-base-"); ok {
		kind, backend, binary = "switchyard", rest, b.s.baseBinary
		if binary == "" {
			b.t.Fatalf("contender %s needs BENCH_BASE_BIN", name)
		}
	}
	client := node.HTTPClient()
	client.Timeout = 90 * time.Second
	p := &proxy{metricsURL: "http://" + node.IP + ":10249/metrics", pprofURL: "http://" + node.IP + ":10249/debug/pprof/", client: client}
	switch kind {
	case "switchyard":
		p.process = node.Start(b.t, "switchyard", "env", "GOMAXPROCS=2", binary, "run",
			"--kubeconfig", b.cluster.RestrictedKubeconfig, "--hostname-override", node.Name,
			"--cluster-cidr", testbed.ClusterCIDR, "--iptables-backend", backend,
			"--healthz-bind-address", node.IP+":10256", "--metrics-bind-address", node.IP+":10249", "-v", "2",
			// pprof is served only with --profiling, as in kube-proxy; the conntrack
			// settings are left alone, since some are global to the host.
			"--profiling", "--conntrack-max-per-core=0", "--conntrack-min=0",
			"--conntrack-tcp-timeout-established=0s", "--conntrack-tcp-timeout-close-wait=0s")
	case "kube-proxy":
		config := filepath.Join(b.cluster.Dir, node.Name+"-bench-kube-proxy.yaml")
		text := fmt.Sprintf(kubeProxyConfig, b.cluster.KubeProxyKubeconfig, node.Name, node.IP, testbed.ClusterCIDR, node.IP, node.IP)
		if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
			b.t.Fatal(err)
		}
		shims := b.shims(backend)
		p.process = node.Start(b.t, "kube-proxy", "env", "PATH="+shims+":/usr/sbin:/usr/bin:/sbin:/bin",
			b.cluster.Tool("kube-proxy"), "--config", config, "--v=2")
		p.pprofURL = ""
	default:
		b.t.Fatalf("unknown contender %q", name)
	}
	return p
}

// shims returns a directory whose iptables programs are backend's.
func (b *run) shims(backend string) string {
	dir := filepath.Join(b.cluster.Dir, "bench-shims-"+backend)
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	for _, family := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			if err := os.Symlink("/usr/sbin/xtables-"+backend+"-multi", filepath.Join(dir, family+suffix)); err != nil {
				b.t.Fatal(err)
			}
		}
	}
	return dir
}

// stop ends the contender and anything it left running in its namespace (an
// iptables-restore child outlives a killed kube-proxy).
func (b *run) stop(p *proxy, node *testbed.Node) {
	if err := p.process.Stop(); err != nil {
		b.t.Logf("stopping %s: %v", p.process.Name, err)
	}
	out, _ := exec.Command("ip", "netns", "pids", node.Netns).Output()
	for _, field := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (b *run) addNode(name string) *testbed.Node {
	b.nodes++
	return b.cluster.AddNode(b.t, fmt.Sprintf("%s-%d", name, b.nodes), nil)
}

// programmed reports whether the first and last benchmark Services have all their
// endpoints' jumps in the kernel. A full restore is one transaction, so these two
// stand for all of them.
func (b *run) programmed(ipt IPTables) func(context.Context) (bool, error) {
	scale := b.r.Scale
	probes := []int{0, scale.Services - 1}
	return func(ctx context.Context) (bool, error) {
		for _, i := range probes {
			listing, ok, err := ipt.ListChain(ctx, ServiceChain(i))
			if err != nil || !ok || CountJumps(listing) < scale.Endpoints {
				return false, err
			}
		}
		return true, nil
	}
}

const hiddenLabel = "service.kubernetes.io/service-proxy-name"

// contender measures one proxy at this scale and returns its figures and the node
// whose table it programmed (nil if it never got there).
func (b *run) contender(name string) (*Contender, *testbed.Node) {
	t, ctx := b.t, b.t.Context()
	backend := name[strings.LastIndex(name, "-")+1:]
	c := &Contender{Name: name, ColdStartCapSeconds: b.s.coldCap.Seconds()}
	node := b.addNode(strings.ReplaceAll(name, "kube-proxy", "kp"))
	ipt := IPTables{Netns: node.Netns, Backend: backend}

	start := time.Now()
	p := b.start(name, node)
	seen, ok, err := WaitFor(ctx, b.s.coldCap, 200*time.Millisecond, b.programmed(ipt))
	if err != nil {
		t.Errorf("%s: waiting for the cold start: %v", name, err)
	}
	cold, _ := ReadProcStats(p.process.Pid())
	c.ColdProc = &cold
	if ok {
		c.ColdStartSeconds = Opt(seen.Sub(start).Seconds())
		t.Logf("%s: cold start %.2fs", name, *c.ColdStartSeconds)
	} else {
		t.Logf("%s: not programmed after %s (cold start)", name, b.s.coldCap)
		c.Notes = append(c.Notes, fmt.Sprintf("cold start: not programmed after %s", b.s.coldCap))
		b.stop(p, node)
		if !b.s.incremental {
			return c, nil
		}
		node, p, ok = b.incremental(name, c)
		if !ok {
			return c, nil
		}
		ipt = IPTables{Netns: node.Netns, Backend: backend}
	}
	if b.s.steady {
		b.steady(name, c, p, ipt)
	}
	if b.s.newServices > 0 {
		b.newService(name, c, node)
	}
	if b.s.churnRate > 0 {
		b.churnLatency(name, c, p, node)
	}
	if stats, err := ReadProcStats(p.process.Pid()); err == nil {
		c.Proc = stats
	}
	b.stop(p, node)
	return c, node
}

// incremental hides every benchmark Service from proxies (the service-proxy-name
// label), starts a fresh instance of the contender, and reveals the Services a batch
// at a time, as if they were being created while the proxy runs.
func (b *run) incremental(name string, c *Contender) (*testbed.Node, *proxy, bool) {
	t, ctx := b.t, b.t.Context()
	scale := b.r.Scale
	hide := []byte(`{"metadata":{"labels":{"` + hiddenLabel + `":"bench-hidden"}}}`)
	reveal := []byte(`{"metadata":{"labels":{"` + hiddenLabel + `":null}}}`)
	if err := b.loader.Parallel(ctx, 0, scale.Services, func(ctx context.Context, i int) error {
		return b.loader.SetServiceLabels(ctx, i, hide)
	}); err != nil {
		t.Errorf("%s: hiding Services: %v", name, err)
		return nil, nil, false
	}
	backend := name[strings.LastIndex(name, "-")+1:]
	node := b.addNode(strings.ReplaceAll(name, "kube-proxy", "kp") + "-inc")
	ipt := IPTables{Netns: node.Netns, Backend: backend}
	start := time.Now()
	p := b.start(name, node)
	time.Sleep(5 * time.Second) // its first (empty) sync
	// Reveal a batch, wait until its last Service is programmed, then the next: the
	// proxy sees Services arrive about as fast as it can program them, as on a
	// cluster that grows, instead of one huge first sync.
	const batch = 100
	for first := 0; first < scale.Services; first += batch {
		n := min(batch, scale.Services-first)
		if err := b.loader.Parallel(ctx, first, n, func(ctx context.Context, i int) error {
			return b.loader.SetServiceLabels(ctx, i, reveal)
		}); err != nil {
			t.Errorf("%s: revealing Services: %v", name, err)
			return node, p, false
		}
		lastChain := ServiceChain(first + n - 1)
		if _, ok, _ := WaitFor(ctx, b.s.coldCap, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			listing, ok, err := ipt.ListChain(ctx, lastChain)
			return ok && CountJumps(listing) >= scale.Endpoints, err
		}); !ok {
			t.Logf("%s: incremental: batch at %d not programmed within %s", name, first, b.s.coldCap)
			break
		}
	}
	seen, ok, err := WaitFor(ctx, b.s.coldCap, time.Second, b.programmed(ipt))
	if err != nil || !ok {
		t.Logf("%s: incremental: not programmed %s after the last Service was revealed (%v)", name, b.s.coldCap, err)
		c.Notes = append(c.Notes, fmt.Sprintf("incremental: not programmed %s after the last reveal", b.s.coldCap))
		b.stop(p, node)
		return nil, nil, false
	}
	c.IncrementalSeconds = Opt(seen.Sub(start).Seconds())
	c.Notes = append(c.Notes, fmt.Sprintf("steady state reached incrementally: Services revealed to a fresh instance %d at a time, each batch once the previous one was programmed; all programmed %.1fs after its start", batch, *c.IncrementalSeconds))
	t.Logf("%s: incremental %.1fs", name, *c.IncrementalSeconds)
	return node, p, true
}

// steady measures one-endpoint changes, adding and deleting a Service, and a burst.
func (b *run) steady(name string, c *Contender, p *proxy, ipt IPTables) {
	t, ctx := b.t, b.t.Context()
	scale := b.r.Scale
	const pause = 1100 * time.Millisecond // past both proxies' 1 s minimum sync period
	time.Sleep(pause)

	first := p.metrics(ctx)
	fullBytes := ParseHistogram(first, "switchyard_restore_payload_bytes", `sync="full"`)
	c.FullPayloadBytes = Opt(fullBytes.Mean())

	// A CPU profile of the one-change phase, Switchyard only.
	var profiles sync.WaitGroup
	if p.pprofURL != "" {
		profiles.Go(func() {
			b.fetch(ctx, p, p.pprofURL+"profile?seconds=30", fmt.Sprintf("%s-%s-cpu.pprof", scale, name), c)
		})
	}
	before := first
	for k := 0; k < b.s.changes; k++ {
		i := b.rng.IntN(scale.Services)
		address := ChangedIP(int(b.changeN.Add(1)))
		want := "-j " + EndpointChain(i, address)
		if err := b.loader.ReplaceEndpoint(ctx, i, scale.Endpoints, address); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		written := time.Now()
		seen, ok, err := WaitFor(ctx, time.Minute, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
			listing, ok, err := ipt.ListChain(ctx, ServiceChain(i))
			return ok && strings.Contains(listing, want), err
		})
		if err != nil || !ok {
			t.Errorf("%s: change %d on %s not programmed within a minute (%v)", name, k, ServiceName(i), err)
			return
		}
		c.ChangeSeconds = append(c.ChangeSeconds, seen.Sub(written).Seconds())
		after := p.metrics(ctx)
		programming := ParseHistogram(after, "kubeproxy_network_programming_duration_seconds", "").
			Sub(ParseHistogram(before, "kubeproxy_network_programming_duration_seconds", ""))
		if v := programming.Mean(); v == v {
			c.ProgrammingSeconds = append(c.ProgrammingSeconds, v)
		}
		before = after
		time.Sleep(pause)
	}
	partial := ParseHistogram(before, "switchyard_restore_payload_bytes", `sync="partial"`).
		Sub(ParseHistogram(first, "switchyard_restore_payload_bytes", `sync="partial"`))
	c.PartialPayloadBytes = Opt(partial.Mean())
	t.Logf("%s: one change p50 %.3fs p90 %.3fs p99 %.3fs over %d", name,
		Quantile(c.ChangeSeconds, .5), Quantile(c.ChangeSeconds, .9), Quantile(c.ChangeSeconds, .99), len(c.ChangeSeconds))
	profiles.Wait()
	if p.pprofURL != "" {
		b.fetch(ctx, p, p.pprofURL+"heap", fmt.Sprintf("%s-%s-heap.pprof", scale, name), c)
	}

	// Add one Service, then delete it; a few times.
	for k := range 5 {
		i := scale.Services + k
		if err := b.loader.CreateService(ctx, i, scale.Endpoints); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		written := time.Now()
		seen, ok, err := WaitFor(ctx, time.Minute, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
			listing, ok, err := ipt.ListChain(ctx, ServiceChain(i))
			return ok && CountJumps(listing) >= scale.Endpoints, err
		})
		if err != nil || !ok {
			t.Errorf("%s: added %s not programmed within a minute (%v)", name, ServiceName(i), err)
			return
		}
		c.AddSeconds = append(c.AddSeconds, seen.Sub(written).Seconds())
		time.Sleep(pause)
		if err := b.loader.DeleteService(ctx, i, scale.Endpoints); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		written = time.Now()
		// Gone from the dispatch chain: kube-proxy's partial syncs leave the emptied
		// chains of a deleted service until its next full sync (hourly).
		jump := "-j " + ServiceChain(i)
		seen, ok, err = WaitFor(ctx, time.Minute, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
			listing, _, err := ipt.ListChain(ctx, "KUBE-SERVICES")
			return err == nil && !strings.Contains(listing, jump), err
		})
		if err != nil || !ok {
			t.Errorf("%s: deleted %s still programmed after a minute (%v)", name, ServiceName(i), err)
			return
		}
		c.DeleteSeconds = append(c.DeleteSeconds, seen.Sub(written).Seconds())
		time.Sleep(pause)
	}

	// A burst of changes on distinct Services, written in parallel.
	burst := min(b.s.burst, scale.Services)
	if burst < 2 {
		return
	}
	picks := b.rng.Perm(scale.Services)[:burst]
	wants := make([]string, burst)
	base := int(b.changeN.Add(int64(burst))) - burst
	for k, i := range picks {
		wants[k] = EndpointChain(i, ChangedIP(base+k+1))
	}
	start := time.Now()
	if err := b.loader.Parallel(ctx, 0, burst, func(ctx context.Context, k int) error {
		return b.loader.ReplaceEndpoint(ctx, picks[k], scale.Endpoints, ChangedIP(base+k+1))
	}); err != nil {
		t.Errorf("%s: burst: %v", name, err)
		return
	}
	writes := time.Since(start)
	c.BurstSize = burst
	seen, ok, err := WaitFor(ctx, 5*time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		saved, err := ipt.Save(ctx)
		if err != nil {
			return false, err
		}
		present := make(map[string]bool, burst)
		for line := range strings.Lines(string(saved)) {
			if strings.HasPrefix(line, ":KUBE-SEP-") {
				present[strings.Fields(line[1:])[0]] = true
			}
		}
		for _, want := range wants {
			if !present[want] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil || !ok {
		c.Notes = append(c.Notes, fmt.Sprintf("burst of %d: not all programmed within 5 min (%v)", burst, err))
		return
	}
	c.BurstSeconds = Opt(seen.Sub(start).Seconds())
	c.Notes = append(c.Notes, fmt.Sprintf("burst of %d: writes took %.1fs; all programmed %.1fs after the first write (polled with iptables-save)", burst, writes.Seconds(), *c.BurstSeconds))
	t.Logf("%s: burst %d in %.1fs (writes %.1fs)", name, burst, *c.BurstSeconds, writes.Seconds())
}

func (b *run) fetch(ctx context.Context, p *proxy, url, file string, c *Contender) {
	request, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	response, err := p.client.Do(request)
	if err != nil {
		b.t.Logf("fetching %s: %v", url, err)
		return
	}
	defer response.Body.Close()
	data, _ := io.ReadAll(response.Body)
	if err := os.WriteFile(filepath.Join(b.s.out, file), data, 0o644); err == nil {
		c.Profiles = append(c.Profiles, file)
	}
}

// floors times bare iptables on the ruleset a contender left in node's table.
func (b *run) floors(node *testbed.Node) {
	t, ctx := b.t, b.t.Context()
	r := b.r
	nft := IPTables{Netns: node.Netns, Backend: "nft"}
	start := time.Now()
	saved, err := nft.Save(ctx)
	if err != nil {
		t.Errorf("floors: %v", err)
		return
	}
	add := func(name string, seconds float64, note string) {
		r.Floors = append(r.Floors, Floor{Name: name, Seconds: Opt(seconds), Note: note})
		t.Logf("floor %s: %.3fs %s", name, seconds, note)
	}
	add("iptables-nft-save -t nat", time.Since(start).Seconds(), "")
	r.NATBytes = len(saved)
	r.NATLines = strings.Count(string(saved), "\n")
	r.NATChains = strings.Count(string(saved), "\n:")

	// One chain rewritten with --noflush, in the loaded table.
	i := r.Scale.Services / 2
	listing, _, err := nft.ListChain(ctx, ServiceChain(i))
	if err != nil {
		t.Errorf("floors: %v", err)
		return
	}
	one := "*nat\n:" + ServiceChain(i) + " - [0:0]\n"
	for line := range strings.Lines(listing) {
		if strings.HasPrefix(line, "-A ") {
			one += line
		}
	}
	one += "COMMIT\n"
	timed := func(label string, ipt IPTables, payload []byte, noflush bool, limit time.Duration) {
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		elapsed, err := ipt.Restore(ctx, payload, noflush)
		switch {
		case ctx.Err() != nil:
			r.Floors = append(r.Floors, Floor{Name: label, Note: fmt.Sprintf("not done after %s", limit)})
			t.Logf("floor %s: not done after %s", label, limit)
		case err != nil:
			t.Errorf("floor %s: %v", label, err)
		default:
			add(label, elapsed.Seconds(), "")
		}
	}
	timed("single-chain --noflush restore, nft", nft, []byte(one), true, time.Minute)
	// The one restore that adds a service, the floor of the time to a new service.
	if payload, err := AddServicePayload(string(saved), i, newServiceBase-1, "10.96.255.250"); err != nil {
		t.Errorf("floors: %v", err)
	} else {
		timed(FloorAddService, nft, payload, true, time.Minute)
	}

	scratch := b.addNode("floor")
	timed("full restore into an empty table (no --noflush), nft", IPTables{Netns: scratch.Netns, Backend: "nft"}, saved, false, 10*time.Minute)
	legacy := IPTables{Netns: scratch.Netns, Backend: "legacy"}
	timed("full restore into an empty table (no --noflush), legacy", legacy, saved, false, 10*time.Minute)
	timed("single-chain --noflush restore, legacy", legacy, []byte(one), true, time.Minute)
	cold := b.addNode("floor-noflush")
	timed("full restore into an empty table in one --noflush transaction, nft", IPTables{Netns: cold.Netns, Backend: "nft"}, saved, true, b.s.noflushCap)
	out, _ := exec.Command("ip", "netns", "pids", cold.Netns).Output()
	for _, field := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
