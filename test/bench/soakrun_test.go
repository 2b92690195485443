//go:build soak

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// soakSettings come from the environment; hack/soak.sh sets them.
type soakSettings struct {
	duration  time.Duration
	services  int
	endpoints int
	rate      float64
	interval  time.Duration
	out       string
}

func readSoakSettings(t *testing.T) soakSettings {
	s := soakSettings{out: os.Getenv("SOAK_OUT")}
	if s.out == "" {
		t.Skip("SOAK_OUT not set: run hack/soak.sh (make soak)")
	}
	var err error
	parse := func(name, fallback string, to func(string) error) {
		value := os.Getenv(name)
		if value == "" {
			value = fallback
		}
		if err := to(value); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	parse("SOAK_DURATION", "30m", func(v string) error { s.duration, err = time.ParseDuration(v); return err })
	parse("SOAK_INTERVAL", "10s", func(v string) error { s.interval, err = time.ParseDuration(v); return err })
	parse("SOAK_SERVICES", "5000", func(v string) error { s.services, err = strconv.Atoi(v); return err })
	parse("SOAK_ENDPOINTS", "10", func(v string) error { s.endpoints, err = strconv.Atoi(v); return err })
	parse("SOAK_RATE", "20", func(v string) error { s.rate, err = strconv.ParseFloat(v, 64); return err })
	return s
}

// hiddenProxyName labels default/kubernetes so that the proxy leaves it out: the API
// server owns it and recreates it, so with it in view the caches could never be
// empty at the end. Nothing else in the cluster is a Service.
const hiddenProxyName = `{"metadata":{"labels":{"service.kubernetes.io/service-proxy-name":"soak-hidden"}}}`

// soakState is the part of /debug/state the soak reads.
type soakState struct {
	Families []struct {
		Family            string   `json:"family"`
		AppliedGeneration uint64   `json:"appliedGeneration"`
		PendingServices   []string `json:"pendingServices"`
		PendingAll        bool     `json:"pendingAll"`
		LastSync          *struct {
			Error string `json:"error"`
		} `json:"lastSync"`
	} `json:"families"`
	ChangedSinceSnapshot []string `json:"changedSinceSnapshot"`
	Snapshot             struct {
		Generation uint64 `json:"generation"`
		Services   []struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Ports     []struct {
				Endpoints []json.RawMessage `json:"endpoints"`
			} `json:"ports"`
		} `json:"services"`
	} `json:"snapshot"`
}

// settled reports whether the state has nothing pending in any family, and how many
// Services and endpoints its snapshot holds.
func (s *soakState) settled() (ok bool, services, endpoints int) {
	ok = len(s.ChangedSinceSnapshot) == 0 && len(s.Families) > 0
	for _, f := range s.Families {
		if f.PendingAll || len(f.PendingServices) > 0 || f.AppliedGeneration != s.Snapshot.Generation {
			ok = false
		}
	}
	for _, svc := range s.Snapshot.Services {
		for _, port := range svc.Ports {
			endpoints += len(port.Endpoints)
		}
	}
	return ok, len(s.Snapshot.Services), endpoints
}

func readState(ctx context.Context, proxy *testbed.Switchyard) (*soakState, error) {
	text, err := proxy.DebugState(ctx)
	if err != nil {
		return nil, err
	}
	var state soakState
	if err := json.Unmarshal([]byte(text), &state); err != nil {
		return nil, fmt.Errorf("decoding /debug/state: %w", err)
	}
	return &state, nil
}

// waitSettled waits until the proxy has applied everything and its snapshot holds
// want Services, and returns the state it saw last.
func waitSettled(ctx context.Context, proxy *testbed.Switchyard, want int, timeout time.Duration) (*soakState, bool) {
	var last *soakState
	_, ok, _ := WaitFor(ctx, timeout, time.Second, func(ctx context.Context) (bool, error) {
		state, err := readState(ctx, proxy)
		if err != nil {
			return false, err
		}
		last = state
		settled, services, _ := state.settled()
		return settled && services == want, nil
	})
	return last, ok
}

// saveAll is iptables-save and ip6tables-save of every table in the node.
func saveAll(ctx context.Context, node *testbed.Node) (string, error) {
	var all strings.Builder
	for _, program := range []string{"iptables-save", "ip6tables-save"} {
		out, err := node.Exec(ctx, program)
		if err != nil {
			return "", fmt.Errorf("%s: %w", program, err)
		}
		// The family goes into the table name, so that the two compare apart.
		family := strings.TrimSuffix(program, "-save")
		all.WriteString(strings.ReplaceAll(out, "\n*", "\n*"+family+"-"))
	}
	return "\n" + all.String(), nil
}

// TestSoak loads SOAK_SERVICES Services of SOAK_ENDPOINTS endpoints each, churns
// them at SOAK_RATE changes a second for SOAK_DURATION while sampling the daemon's
// resources every SOAK_INTERVAL, then deletes everything, and checks that the
// resources stayed flat, every sync succeeded, the rules matched the churn's model,
// and that nothing but the base chains and empty caches are left. It writes
// soak-samples.csv and soak-summary.json to SOAK_OUT.
func TestSoak(t *testing.T) {
	testbed.Require(t)
	s := readSoakSettings(t)
	ctx := t.Context()
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		t.Fatal(err)
	}
	cluster := testbed.StartControlPlane(t)
	if out, err := cluster.Kubectl(ctx, "apply", "-f", filepath.Join(soakRoot(t), "manifests/deploy/rbac.yaml")); err != nil {
		t.Fatalf("applying RBAC: %v\n%s", err, out)
	}
	if _, err := cluster.Clientset.CoreV1().Services("default").Patch(ctx, "kubernetes", types.MergePatchType, []byte(hiddenProxyName), metav1.PatchOptions{}); err != nil {
		t.Fatalf("hiding default/kubernetes: %v", err)
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
	loader := &Loader{Client: client, Workers: 32}

	node := cluster.AddNode(t, "soak", nil)
	// kube-proxy's default minimum sync period (1 s), not the testbed's 100 ms: the
	// soak is about the daemon as it runs on a node.
	proxy := cluster.AddSwitchyard(t, node, testbed.SwitchyardOptions{MinSyncPeriod: time.Second, ExtraArgs: []string{"--profiling"}})
	started := time.Now()
	if _, ok := waitSettled(ctx, proxy, 0, time.Minute); !ok {
		t.Fatal("the daemon did not settle on an empty cluster within a minute")
	}
	baseline, err := saveAll(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(WantBaseChains(), filterTables(SaveChains(baseline))); diff != "" {
		t.Errorf("KUBE- chains with no Service (-want base +got):\n%s", diff)
	}
	os.WriteFile(filepath.Join(s.out, "soak-iptables-baseline.txt"), []byte(baseline), 0o644)

	churn := NewChurn(loader, s.services, s.endpoints, 1)
	var phase atomic.Value
	phase.Store(PhaseLoad)
	var changes, apiErrors atomic.Int64
	sampler := startSampler(t, proxy, s, started, &phase, func(sample *Sample) {
		sample.Changes, sample.APIErrors = float64(changes.Load()), float64(apiErrors.Load())
		// The model's counts are what the API server holds during the churn only.
		if sample.Phase == PhaseChurn {
			services, endpoints := churn.Totals()
			sample.Services, sample.Endpoints = float64(services), float64(endpoints)
		}
	})

	// Load.
	if err := loader.EnsureNamespace(ctx); err != nil {
		t.Fatal(err)
	}
	loadStart := time.Now()
	if err := loader.Load(ctx, 0, s.services, s.endpoints); err != nil {
		t.Fatalf("loading: %v", err)
	}
	if _, ok := waitSettled(ctx, proxy, s.services, 5*time.Minute); !ok {
		t.Fatalf("%d Services not all applied within 5 minutes of the load", s.services)
	}
	t.Logf("loaded and applied %dx%d in %.1fs (load average %s)", s.services, s.endpoints, time.Since(loadStart).Seconds(), LoadAverage())

	// Churn at a steady rate: change k is due at start + k/rate, whatever the
	// latency of earlier ones; 16 writers keep a slow API call from holding the
	// rest back.
	phase.Store(PhaseChurn)
	churnStart := time.Now()
	due := make(chan struct{})
	var writers sync.WaitGroup
	for range 16 {
		writers.Go(func() {
			for range due {
				if _, err := churn.Step(ctx); err != nil {
					if apiErrors.Add(1) <= 10 {
						t.Errorf("churn: %v", err)
					}
					continue
				}
				changes.Add(1)
			}
		})
	}
	period := time.Duration(float64(time.Second) / s.rate)
	late := 0
	for k := 0; ; k++ {
		at := churnStart.Add(time.Duration(k) * period)
		if at.Sub(churnStart) >= s.duration || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Until(at))
		select {
		case due <- struct{}{}:
		default:
			late++
			due <- struct{}{}
		}
	}
	close(due)
	writers.Wait()
	churnSeconds := time.Since(churnStart).Seconds()
	t.Logf("churn: %d changes in %.0fs (%.2f/s), %d API errors, %d handed out late; by kind %v",
		changes.Load(), churnSeconds, float64(changes.Load())/churnSeconds, apiErrors.Load(), late, churn.Counts())

	// The rules against the model, once everything is applied.
	phase.Store(PhaseCheck)
	model := churn.Snapshot()
	existing, endpoints := churn.Totals()
	checks := map[string]any{}
	if state, ok := waitSettled(ctx, proxy, existing, 2*time.Minute); !ok {
		t.Errorf("after the churn: not settled on %d Services within 2 minutes", existing)
	} else {
		_, services, snapshotEndpoints := state.settled()
		checks["after_churn_snapshot_services"], checks["after_churn_snapshot_endpoints"] = services, snapshotEndpoints
		if services != existing || snapshotEndpoints != endpoints {
			t.Errorf("after the churn: snapshot has %d Services, %d endpoints; the model %d, %d", services, snapshotEndpoints, existing, endpoints)
		}
	}
	if nat, err := node.Exec(ctx, "iptables-save", "-t", "nat"); err != nil {
		t.Errorf("after the churn: %v", err)
	} else {
		problems := CheckNAT(nat, model)
		checks["after_churn_rule_mismatches"] = len(problems)
		for _, p := range problems[:min(len(problems), 10)] {
			t.Errorf("after the churn: %s", p)
		}
		t.Logf("after the churn: rules of %d Services checked against the model: %d mismatches", existing, len(problems))
	}
	fetchTo(ctx, node, strings.TrimSuffix(proxy.MetricsURL, "/metrics")+"/debug/pprof/heap", filepath.Join(s.out, "soak-heap-end-of-churn.pprof"))

	// Delete everything.
	phase.Store(PhaseDelete)
	deleteStart := time.Now()
	var alive []int
	for i, svc := range model {
		if svc.Exists {
			alive = append(alive, i)
		}
	}
	if err := loader.Parallel(ctx, 0, len(alive), func(ctx context.Context, k int) error {
		return loader.DeleteService(ctx, alive[k], 1)
	}); err != nil {
		t.Errorf("deleting: %v", err)
	}
	t.Logf("delete requests for %d Services returned in %.1fs (load average %s)", len(alive), time.Since(deleteStart).Seconds(), LoadAverage())
	final, ok := waitSettled(ctx, proxy, 0, 3*time.Minute)
	if !ok {
		t.Errorf("after deleting everything: not settled on 0 Services within 3 minutes")
	}
	if final != nil {
		settled, services, snapshotEndpoints := final.settled()
		checks["final_settled"], checks["final_snapshot_services"], checks["final_snapshot_endpoints"] = settled, services, snapshotEndpoints
		checks["final_changed_since_snapshot"] = len(final.ChangedSinceSnapshot)
		for _, f := range final.Families {
			checks["final_pending_"+f.Family] = len(f.PendingServices)
		}
	}
	t.Logf("deleted %d Services, all applied %.1fs after the first delete request", len(alive), time.Since(deleteStart).Seconds())
	after, err := saveAll(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.out, "soak-iptables-final.txt"), []byte(after), 0o644)
	finalChains := filterTables(SaveChains(after))
	checks["final_kube_chains"] = finalChains
	if diff := cmp.Diff(WantBaseChains(), finalChains); diff != "" {
		t.Errorf("KUBE- chains after deleting everything (-want base +got):\n%s", diff)
	}
	if diff := cmp.Diff(NormalizeSave(baseline), NormalizeSave(after)); diff != "" {
		t.Errorf("rules after deleting everything differ from those before the load (-before +after):\n%s", diff)
	}
	checks["final_rules_equal_baseline"] = cmp.Equal(NormalizeSave(baseline), NormalizeSave(after))
	// A few more samples of the emptied daemon.
	time.Sleep(3 * s.interval)
	samples := sampler.stop()

	verdict := Judge(samples)
	summary := map[string]any{
		"settings": map[string]any{"duration": s.duration.String(), "services": s.services, "endpoints": s.endpoints,
			"rate_per_second": s.rate, "interval": s.interval.String(), "min_sync_period": "1s"},
		"churn_seconds": churnSeconds, "changes_by_kind": churn.Counts(), "api_errors": apiErrors.Load(), "late": late,
		"checks": checks, "verdict": verdict, "load_average_end": LoadAverage(),
	}
	if data, err := json.MarshalIndent(summary, "", "  "); err == nil {
		os.WriteFile(filepath.Join(s.out, "soak-summary.json"), append(data, '\n'), 0o644)
	}
	t.Logf("verdict over %.1f min of churn (%d samples): heap in use %.1f MB mean, slope %.2f MB/10min (live heap %.2f); RSS %.1f MB mean, slope %.2f MB/10min; goroutines %.0f..%.0f; fds %.0f..%.0f (floor %.0f over the first third, %.0f over the last); syncs %.0f ok, %.0f failed (whole run), %.0f restore failures; %.0f changes at %.2f/s",
		verdict.ChurnMinutes, verdict.ChurnSamples, verdict.HeapMeanMB, verdict.HeapSlope, verdict.LiveHeapSlope, verdict.RSSMeanMB, verdict.RSSSlope,
		verdict.GoroutineMin, verdict.GoroutineMax, verdict.FDMin, verdict.FDMax, verdict.FDFloorFirst, verdict.FDFloorLast, verdict.SyncsOK, verdict.SyncsFailedTotal, verdict.RestoreFailures,
		verdict.Changes, verdict.ChangesPerSecond)
	for _, p := range verdict.Problems {
		t.Errorf("not flat: %s", p)
	}
	if verdict.ChangesPerSecond < 0.95*s.rate {
		t.Errorf("the churn reached %.2f changes/s, under 95%% of the %.0f asked for", verdict.ChangesPerSecond, s.rate)
	}
}

// filterTables keeps the chains of the iptables (IPv4) tables, named as SaveChains
// names them without the family prefix saveAll adds, and checks the IPv6 tables
// hold the same.
func filterTables(chains []string) []string {
	var v4, v6 []string
	for _, c := range chains {
		if rest, ok := strings.CutPrefix(c, "iptables-"); ok {
			v4 = append(v4, rest)
		} else if rest, ok := strings.CutPrefix(c, "ip6tables-"); ok {
			v6 = append(v6, rest)
		}
	}
	if !slices.Equal(v4, v6) {
		return append(v4, "IPv6 differs: "+strings.Join(v6, " "))
	}
	return v4
}

func soakRoot(t *testing.T) string {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func fetchTo(ctx context.Context, node *testbed.Node, url, path string) {
	client := node.HTTPClient()
	client.Timeout = time.Minute
	response, err := client.Get(url)
	if err != nil {
		return
	}
	defer response.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, response.Body); err == nil {
		os.WriteFile(path, buf.Bytes(), 0o644)
	}
}

// sampler scrapes /metrics every interval and rewrites the CSV after each sample, so
// that a run cut short keeps what it measured.
type sampler struct {
	t       *testing.T
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	samples []Sample
}

func startSampler(t *testing.T, proxy *testbed.Switchyard, s soakSettings, started time.Time, phase *atomic.Value, fill func(*Sample)) *sampler {
	sp := &sampler{t: t, stopped: make(chan struct{}), done: make(chan struct{})}
	// A test that fails half-way must not leave the sampler logging after it ended.
	t.Cleanup(func() { sp.stop() })
	path := filepath.Join(s.out, "soak-samples.csv")
	go func() {
		defer close(sp.done)
		ticker := time.NewTicker(s.interval)
		defer ticker.Stop()
		for {
			sample := Sample{ElapsedSeconds: time.Since(started).Seconds(), Phase: phase.Load().(string)}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			metrics, err := proxy.Metrics(ctx)
			cancel()
			if err == nil {
				err = ParseSample(metrics, &sample)
			}
			if err != nil {
				t.Errorf("sample at %.0fs: %v", sample.ElapsedSeconds, err)
			} else {
				fill(&sample)
				load, _ := strconv.ParseFloat(strings.Fields(LoadAverage())[0], 64)
				sample.Load1 = load
				sp.mu.Lock()
				sp.samples = append(sp.samples, sample)
				var buf bytes.Buffer
				if err := WriteSamples(&buf, sp.samples); err == nil {
					os.WriteFile(path, buf.Bytes(), 0o644)
				}
				sp.mu.Unlock()
			}
			select {
			case <-sp.stopped:
				return
			case <-ticker.C:
			}
		}
	}()
	return sp
}

func (sp *sampler) stop() []Sample {
	sp.once.Do(func() { close(sp.stopped) })
	<-sp.done
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return slices.Clone(sp.samples)
}
