//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// nftContenders are TestNFTablesBench's defaults: the pinned kube-proxy and Switchyard,
// both in --proxy-mode nftables.
const nftContenders = "kube-proxy-nftables,switchyard-nftables"

// TestNFTablesBench runs nftables-mode contenders at every scale and writes
// $BENCH_OUT/results-$BENCH_TAG.json after each contender (hack/bench-nftables.sh).
// It measures what TestSyncBench does (cold start, one endpoint change, a new and a
// deleted Service, a burst), from outside with `nft list` in the node's namespace, and
// adds a full sync: the proxy restarted on its populated table. After each contender
// it times bare nft on that contender's own ruleset (the floors).
func TestNFTablesBench(t *testing.T) {
	testbed.Require(t)
	s := readSettings(t)
	if os.Getenv("BENCH_CONTENDERS") == "" {
		s.contenders = strings.Split(nftContenders, ",")
	}
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		t.Fatal(err)
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	host, _ := os.Hostname()
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	nft, _ := exec.Command("nft", "--version").Output()
	results := &Results{
		Started: time.Now().UTC().Format(time.RFC3339), Host: host,
		Kernel: strings.TrimSpace(string(kernel)), Commit: strings.TrimSpace(string(commit)),
		LoadAtStart: LoadAverage(), Notes: []string{strings.TrimSpace(string(nft))},
	}
	path := filepath.Join(s.out, "results-"+s.tag+".json")
	save := func() {
		if err := results.Write(path); err != nil {
			t.Errorf("writing %s: %v", path, err)
		}
	}
	for _, scale := range s.scales {
		t.Run(scale.String(), func(t *testing.T) {
			r := &ScaleResult{Scale: scale, NFTLines: map[string]int{}, NFTChains: map[string]int{}, NFTBytes: map[string]int{}}
			results.Scales = append(results.Scales, r)
			b := newRun(t, s, r)
			save()
			for _, name := range s.contenders {
				c, node := b.nftContender(name)
				r.Contenders = append(r.Contenders, c)
				if node != nil && env("BENCH_NFT_FLOORS", "1") == "1" {
					b.nftFloors(name, node)
				}
				r.LoadAverages = append(r.LoadAverages, name+": "+LoadAverage())
				save()
			}
		})
	}
	t.Logf("results in %s", path)
}

// newRun starts a control plane and loads the scale's Services into it.
func newRun(t *testing.T, s settings, r *ScaleResult) *run {
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
	b := &run{t: t, s: s, r: r, cluster: cluster, loader: &Loader{Client: client, Workers: 16}, rng: rand.New(rand.NewPCG(1, uint64(r.Scale.Services)))}
	if err := b.loader.EnsureNamespace(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// On this shared machine etcd times requests out now and then under load; a
	// Service whose creation failed is deleted and created again, a few times.
	if err := b.loader.Parallel(ctx, 0, r.Scale.Services, func(ctx context.Context, i int) error {
		var err error
		for attempt := range 5 {
			if err = b.loader.CreateService(ctx, i, r.Scale.Endpoints); err == nil {
				return nil
			}
			time.Sleep(time.Duration(attempt+1) * time.Second)
			_ = b.loader.DeleteService(ctx, i, r.Scale.Endpoints)
		}
		return err
	}); err != nil {
		t.Fatalf("loading %s: %v", r.Scale, err)
	}
	r.LoadSeconds = time.Since(start).Seconds()
	t.Logf("loaded %s in %.1fs (load average %s)", r.Scale, r.LoadSeconds, LoadAverage())
	return b
}

// kubeProxyNFTConfig is the bench's kube-proxy configuration (see kubeProxyConfig) in
// nftables mode.
const kubeProxyNFTConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %q
  qps: 50
  burst: 100
hostnameOverride: %q
bindAddress: %q
clusterCIDR: %q
mode: nftables
healthzBindAddress: "%s:10256"
metricsBindAddress: "%s:10249"
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`

// startNFT launches an nftables-mode contender on node.
func (b *run) startNFT(name string, node *testbed.Node) *proxy {
	client := node.HTTPClient()
	client.Timeout = 90 * time.Second
	p := &proxy{metricsURL: "http://" + node.IP + ":10249/metrics", pprofURL: "http://" + node.IP + ":10249/debug/pprof/", client: client}
	switch name {
	case "switchyard-nftables":
		p.process = node.Start(b.t, "switchyard", "env", "GOMAXPROCS=2", b.s.binary, "run",
			"--kubeconfig", b.cluster.RestrictedKubeconfig, "--hostname-override", node.Name,
			"--cluster-cidr", testbed.ClusterCIDR, "--proxy-mode", "nftables",
			"--healthz-bind-address", node.IP+":10256", "--metrics-bind-address", node.IP+":10249", "-v", "2",
			"--profiling", "--conntrack-max-per-core=0", "--conntrack-min=0",
			"--conntrack-tcp-timeout-established=0s", "--conntrack-tcp-timeout-close-wait=0s")
	case "kube-proxy-nftables":
		config := filepath.Join(b.cluster.Dir, node.Name+"-bench-kube-proxy-nftables.yaml")
		text := fmt.Sprintf(kubeProxyNFTConfig, b.cluster.KubeProxyKubeconfig, node.Name, node.IP, testbed.ClusterCIDR, node.IP, node.IP)
		if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
			b.t.Fatal(err)
		}
		// kube-proxy runs nft (knftables) from PATH.
		p.process = node.Start(b.t, "kube-proxy", "env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
			b.cluster.Tool("kube-proxy"), "--config", config, "--v=2")
		p.pprofURL = ""
	default:
		b.t.Fatalf("unknown nftables contender %q (want kube-proxy-nftables or switchyard-nftables)", name)
	}
	return p
}

// nftProgrammed reports whether the first and last benchmark Services dispatch to all
// their endpoints. A sync is one nft transaction, so these two stand for all of them.
func (b *run) nftProgrammed(probe *NFTProbe) func(context.Context) (bool, error) {
	scale := b.r.Scale
	probes := []int{0, scale.Services - 1}
	return func(ctx context.Context) (bool, error) {
		for _, i := range probes {
			endpoints, ok, err := probe.ServiceEndpoints(NFTServiceChain(i))
			if err != nil || !ok || len(endpoints) < scale.Endpoints {
				return false, err
			}
		}
		return true, nil
	}
}

// openProbe opens the netlink probe of node's namespace, closed at the test's end.
func (b *run) openProbe(node *testbed.Node) *NFTProbe {
	probe, err := OpenNFTProbe(node.Netns)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { _ = probe.Close() })
	return probe
}

// fullSyncSeconds waits (bounded) for p's first IPv4 full sync to show in its metrics
// and returns its duration as the proxy timed it, NaN if none shows.
func (b *run) fullSyncSeconds(p *proxy) float64 {
	h := Histogram{}
	_, _, _ = WaitFor(b.t.Context(), 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		h = ParseHistogram(p.metrics(ctx), "kubeproxy_sync_full_proxy_rules_duration_seconds", `ip_family="IPv4"`)
		return h.Count > 0, nil
	})
	if h.Count == 0 {
		return h.Mean()
	}
	// The first full sync only: a second one (none is due within an hour) would
	// only blur it.
	return h.Sum / h.Count
}

// nftContender measures one nftables-mode proxy at this scale and returns its figures
// and the node whose table it programmed (nil if it never got there).
func (b *run) nftContender(name string) (*Contender, *testbed.Node) {
	t, ctx := b.t, b.t.Context()
	c := &Contender{Name: name, ColdStartCapSeconds: b.s.coldCap.Seconds()}
	node := b.addNode(strings.ReplaceAll(name, "kube-proxy", "kp"))
	n := NFTables{Netns: node.Netns}
	probe := b.openProbe(node)

	start := time.Now()
	p := b.startNFT(name, node)
	seen, ok, err := WaitFor(ctx, b.s.coldCap, 100*time.Millisecond, b.nftProgrammed(probe))
	if err != nil {
		t.Errorf("%s: waiting for the cold start: %v", name, err)
	}
	cold, _ := ReadProcStats(p.process.Pid())
	c.ColdProc = &cold
	if !ok {
		listing, found, err := n.ListChain(ctx, NFTServiceChain(0))
		chains, _ := n.ListChains(ctx)
		t.Logf("%s: not programmed after %s (cold start); %s: found=%v err=%v\n%s\nchains:\n%s\nlast log lines:\n%s", name, b.s.coldCap,
			NFTServiceChain(0), found, err, listing, head([]byte(chains), 20), p.process.Tail(10))
		c.Notes = append(c.Notes, fmt.Sprintf("cold start: not programmed after %s", b.s.coldCap))
		b.stop(p, node)
		return c, nil
	}
	c.ColdStartSeconds = Opt(seen.Sub(start).Seconds())
	c.ColdFullSyncSeconds = Opt(b.fullSyncSeconds(p))
	t.Logf("%s: cold start %.2fs (own full sync %s)", name, *c.ColdStartSeconds, optString(c.ColdFullSyncSeconds))
	b.nftSteady(name, c, p, probe)
	if stats, err := ReadProcStats(p.process.Pid()); err == nil {
		c.Proc = stats
	}
	b.stop(p, node)
	b.keepSyncLog(name, p)
	restarts, err := strconv.Atoi(env("BENCH_RESTARTS", "3"))
	if err != nil {
		t.Fatal(err)
	}
	b.nftRestarts(name, c, node, n, probe, restarts)
	return c, node
}

func optString(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.3fs", *v)
}

// nftRestarts measures full syncs: the proxy is stopped, the first and last
// benchmark service chains are flushed behind its back, and a fresh instance is
// started on the populated table; only a full sync (kube-proxy's first sync after a
// start always is one) puts those rules back. Process start → both programmed again
// is the full sync from outside, informer start-up included.
func (b *run) nftRestarts(name string, c *Contender, node *testbed.Node, n NFTables, probe *NFTProbe, times int) {
	t, ctx := b.t, b.t.Context()
	for k := range times {
		for _, i := range []int{0, b.r.Scale.Services - 1} {
			if err := n.FlushChain(ctx, NFTServiceChain(i)); err != nil {
				t.Errorf("%s: restart %d: %v", name, k, err)
				return
			}
		}
		if ok, _ := b.nftProgrammed(probe)(ctx); ok {
			t.Errorf("%s: restart %d: probes still programmed after the flush", name, k)
			return
		}
		start := time.Now()
		p := b.startNFT(name, node)
		seen, ok, err := WaitFor(ctx, b.s.coldCap, 100*time.Millisecond, b.nftProgrammed(probe))
		if !ok {
			t.Errorf("%s: restart %d: not programmed after %s (%v)", name, k, b.s.coldCap, err)
			c.Notes = append(c.Notes, fmt.Sprintf("restart %d: not programmed after %s", k, b.s.coldCap))
			b.stop(p, node)
			return
		}
		c.RestartSeconds = append(c.RestartSeconds, seen.Sub(start).Seconds())
		if v := b.fullSyncSeconds(p); v == v {
			c.FullSyncSeconds = append(c.FullSyncSeconds, v)
		}
		if stats, err := ReadProcStats(p.process.Pid()); err == nil {
			c.RestartProc = &stats
		}
		t.Logf("%s: restart %d: programmed %.2fs after start (own full syncs so far %v)", name, k, c.RestartSeconds[k], c.FullSyncSeconds)
		b.stop(p, node)
		b.keepSyncLog(name, p)
	}
}

// keepSyncLog appends the proxy's log lines about syncs (kube-proxy's "SyncProxyRules
// complete" with its elapsed time, Switchyard's sync lines with render and apply
// times) to $BENCH_OUT/<scale>-<name>-sync.log, for telling where a sync's time goes.
func (b *run) keepSyncLog(name string, p *proxy) {
	data, err := os.ReadFile(p.process.LogPath)
	if err != nil {
		b.t.Logf("keeping the sync log: %v", err)
		return
	}
	var kept bytes.Buffer
	fmt.Fprintf(&kept, "=== %s (pid %d)\n", p.process.Name, p.process.Pid())
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, "ync") && kept.Len() < 4<<20 {
			kept.WriteString(line)
		}
	}
	f, err := os.OpenFile(filepath.Join(b.s.out, fmt.Sprintf("%s-%s-sync.log", b.r.Scale, name)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		b.t.Logf("keeping the sync log: %v", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(kept.Bytes())
}

// nftSteady measures one-endpoint changes, adding and deleting a Service, and a burst,
// as steady does for the iptables contenders.
func (b *run) nftSteady(name string, c *Contender, p *proxy, probe *NFTProbe) {
	t, ctx := b.t, b.t.Context()
	scale := b.r.Scale
	const pause = 1100 * time.Millisecond // past both proxies' 1 s minimum sync period
	time.Sleep(pause)

	// A first change, waited for as long as a cold start: whatever the proxy still
	// does after its first sync (a second full sync, say) delays this one and not the
	// measured ones. Its latency is in the notes.
	{
		i := b.rng.IntN(scale.Services)
		address := ChangedIP(int(b.changeN.Add(1)))
		if err := b.loader.ReplaceEndpoint(ctx, i, scale.Endpoints, address); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		written := time.Now()
		seen, ok, err := WaitFor(ctx, b.s.coldCap, 2*time.Millisecond, func(ctx context.Context) (bool, error) {
			endpoints, ok, err := probe.ServiceEndpoints(NFTServiceChain(i))
			return ok && HasEndpoint(endpoints, i, address), err
		})
		if !ok {
			t.Errorf("%s: first change on %s not programmed within %s (%v)", name, ServiceName(i), b.s.coldCap, err)
			c.Notes = append(c.Notes, fmt.Sprintf("first change after the cold start: not programmed within %s", b.s.coldCap))
			return
		}
		full := ParseHistogram(p.metrics(ctx), "kubeproxy_sync_full_proxy_rules_duration_seconds", `ip_family="IPv4"`)
		c.Notes = append(c.Notes, fmt.Sprintf("first change after the cold start (not in the one-change figures): programmed %.2fs after its write; %.0f full syncs (IPv4) by then, %.1fs in all", seen.Sub(written).Seconds(), full.Count, full.Sum))
		t.Logf("%s: %s", name, c.Notes[len(c.Notes)-1])
		time.Sleep(pause)
	}

	// A CPU profile of the one-change phase, Switchyard only.
	profiled := make(chan struct{})
	if p.pprofURL != "" {
		go func() {
			defer close(profiled)
			b.fetch(ctx, p, p.pprofURL+"profile?seconds=30", fmt.Sprintf("%s-%s-cpu.pprof", scale, name), c)
		}()
	} else {
		close(profiled)
	}
	before := p.metrics(ctx)
	for k := 0; k < b.s.changes; k++ {
		i := b.rng.IntN(scale.Services)
		address := ChangedIP(int(b.changeN.Add(1)))
		if err := b.loader.ReplaceEndpoint(ctx, i, scale.Endpoints, address); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		written := time.Now()
		seen, ok, err := WaitFor(ctx, time.Minute, 2*time.Millisecond, func(ctx context.Context) (bool, error) {
			endpoints, ok, err := probe.ServiceEndpoints(NFTServiceChain(i))
			return ok && HasEndpoint(endpoints, i, address), err
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
	t.Logf("%s: one change p50 %.3fs p90 %.3fs p99 %.3fs over %d", name,
		Quantile(c.ChangeSeconds, .5), Quantile(c.ChangeSeconds, .9), Quantile(c.ChangeSeconds, .99), len(c.ChangeSeconds))
	<-profiled
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
		seen, ok, err := WaitFor(ctx, time.Minute, 2*time.Millisecond, func(ctx context.Context) (bool, error) {
			endpoints, ok, err := probe.ServiceEndpoints(NFTServiceChain(i))
			return ok && len(endpoints) >= scale.Endpoints, err
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
		// Gone from the service-ips dispatch map; kube-proxy deletes the chain itself
		// only later.
		seen, ok, err = WaitFor(ctx, time.Minute, 2*time.Millisecond, func(ctx context.Context) (bool, error) {
			has, ok, err := probe.MapHasChain("service-ips", NFTServiceChain(i))
			return err == nil && ok && !has, err
		})
		if err != nil || !ok {
			t.Errorf("%s: deleted %s still programmed after a minute (%v)", name, ServiceName(i), err)
			return
		}
		c.DeleteSeconds = append(c.DeleteSeconds, seen.Sub(written).Seconds())
		time.Sleep(pause)
	}

	t.Logf("%s: add a service median %.3fs, delete %.3fs", name, Quantile(c.AddSeconds, .5), Quantile(c.DeleteSeconds, .5))

	// A burst of changes on distinct Services, written in parallel.
	burst := min(b.s.burst, scale.Services)
	if burst < 2 {
		return
	}
	picks := b.rng.Perm(scale.Services)[:burst]
	base := int(b.changeN.Add(int64(burst))) - burst
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
		for k, i := range picks {
			endpoints, ok, err := probe.ServiceEndpoints(NFTServiceChain(i))
			if err != nil || !ok || !HasEndpoint(endpoints, i, ChangedIP(base+k+1)) {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil || !ok {
		c.Notes = append(c.Notes, fmt.Sprintf("burst of %d: not all programmed within 5 min (%v)", burst, err))
		return
	}
	c.BurstSeconds = Opt(seen.Sub(start).Seconds())
	c.Notes = append(c.Notes, fmt.Sprintf("burst of %d: writes took %.1fs; all programmed %.1fs after the first write (polled over netlink)", burst, writes.Seconds(), *c.BurstSeconds))
	t.Logf("%s: burst %d in %.1fs (writes %.1fs)", name, burst, *c.BurstSeconds, writes.Seconds())
}

// nftFloors times bare nft on the ruleset contender name left in node's namespace:
// listing it, one service chain rewritten in the loaded table (a one-change
// transaction), and the whole table loaded into an empty namespace with `nft -f`.
func (b *run) nftFloors(name string, node *testbed.Node) {
	t, ctx := b.t, b.t.Context()
	r := b.r
	n := NFTables{Netns: node.Netns}
	add := func(label string, seconds float64) {
		r.Floors = append(r.Floors, Floor{Name: name + ": " + label, Seconds: Opt(seconds)})
		t.Logf("floor %s: %s: %.3fs", name, label, seconds)
	}
	fail := func(label string, note string) {
		r.Floors = append(r.Floors, Floor{Name: name + ": " + label, Note: note})
		t.Logf("floor %s: %s: %s", name, label, note)
	}
	start := time.Now()
	table, err := n.ListTable(ctx)
	if err != nil {
		t.Errorf("floors: %v", err)
		return
	}
	add("nft list table ip kube-proxy", time.Since(start).Seconds())
	r.NFTBytes[name] = len(table)
	r.NFTLines[name] = strings.Count(string(table), "\n")
	r.NFTChains[name] = strings.Count(string(table), "\tchain ")
	if err := os.WriteFile(filepath.Join(b.s.out, fmt.Sprintf("%s-%s-ruleset-head.nft", r.Scale, name)), head(table, 200), 0o644); err != nil {
		t.Logf("floors: %v", err)
	}

	timed := func(label string, n NFTables, payload []byte, limit time.Duration) {
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		elapsed, err := n.Load(ctx, payload)
		switch {
		case ctx.Err() != nil:
			fail(label, fmt.Sprintf("not done after %s", limit))
		case err != nil:
			fail(label, err.Error())
		default:
			add(label, elapsed.Seconds())
		}
	}
	i := r.Scale.Services / 2
	chain := NFTServiceChain(i)
	listing, ok, err := n.ListChain(ctx, chain)
	if err != nil || !ok {
		t.Errorf("floors: listing %s: ok=%v %v", chain, ok, err)
		return
	}
	// The probes' own cost, which bounds the resolution of every latency above (the
	// benchmark polls over netlink).
	start = time.Now()
	if _, _, err := n.ListChain(ctx, chain); err == nil {
		add("nft list chain of one service chain", time.Since(start).Seconds())
	}
	if probe, err := OpenNFTProbe(node.Netns); err == nil {
		start = time.Now()
		endpoints, _, err := probe.ServiceEndpoints(chain)
		if err == nil && len(endpoints) >= r.Scale.Endpoints {
			add("probe: one service chain and its map over netlink", time.Since(start).Seconds())
		}
		_ = probe.Close()
	}
	for k := range 3 {
		timed(fmt.Sprintf("one-service transaction (flush + re-add one service chain) into the loaded table, nft -f, #%d", k+1), n, OneServiceTransaction(chain, listing), time.Minute)
	}
	scratch := b.addNode("floor-nft")
	timed("whole table into an empty namespace, one nft -f", NFTables{Netns: scratch.Netns}, table, 10*time.Minute)
	ids, _ := exec.Command("ip", "netns", "pids", scratch.Netns).Output()
	if len(strings.TrimSpace(string(ids))) > 0 {
		t.Logf("floors: processes left in %s: %s", scratch.Netns, ids)
	}
	// The scratch table goes with its namespace at teardown; deleting it now frees
	// the kernel memory before the next contender.
	_, _, _ = NFTables{Netns: scratch.Netns}.output(ctx, "delete", "table", "ip", NFTTable)
}

// head returns the first n lines of text.
func head(text []byte, n int) []byte {
	end := 0
	for range n {
		k := bytes.IndexByte(text[end:], '\n')
		if k < 0 {
			return text
		}
		end += k + 1
	}
	return text[:end]
}
