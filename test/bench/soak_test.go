package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestMetricSum(t *testing.T) {
	const metrics = `# HELP go_goroutines x
go_goroutines 47
go_goroutines_extra 3
switchyard_syncs_total{ip_family="IPv4",result="success",sync="full"} 2
switchyard_syncs_total{ip_family="IPv4",result="success",sync="partial"} 40
switchyard_syncs_total{ip_family="IPv6",result="error",sync="partial"} 1
`
	for _, tc := range []struct {
		name, labels string
		want         float64
		wantOK       bool
	}{
		{"go_goroutines", "", 47, true},
		{"switchyard_syncs_total", `result="success"`, 42, true},
		{"switchyard_syncs_total", `result="error"`, 1, true},
		{"switchyard_syncs_total", "", 43, true},
		{"process_open_fds", "", 0, false},
		{"go_goroutines", `x="y"`, 0, false},
	} {
		t.Run(tc.name+tc.labels, func(t *testing.T) {
			got, ok := MetricSum(metrics, tc.name, tc.labels)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("MetricSum = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

const sampleMetrics = `go_memstats_heap_inuse_bytes 1e+08
go_memstats_heap_alloc_bytes 9e+07
go_memstats_next_gc_bytes 1.2e+08
process_resident_memory_bytes 2e+08
go_goroutines 50
process_open_fds 12
switchyard_syncs_total{ip_family="IPv4",result="success",sync="partial"} 30
switchyard_syncs_total{ip_family="IPv6",result="success",sync="full"} 2
kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"} 1
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 3
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 32
`

func TestParseSample(t *testing.T) {
	var got Sample
	if err := ParseSample(sampleMetrics, &got); err != nil {
		t.Fatal(err)
	}
	want := Sample{HeapInuseBytes: 1e8, HeapAllocBytes: 9e7, NextGCBytes: 1.2e8, RSSBytes: 2e8, Goroutines: 50, OpenFDs: 12,
		SyncsOK: 32, RestoreFailures: 1, SyncSecondsSum: 3, SyncCount: 32}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseSample (-want +got):\n%s", diff)
	}
	// A soak without a resource gauge proves nothing.
	if err := ParseSample(strings.ReplaceAll(sampleMetrics, "process_open_fds", "x"), &got); err == nil {
		t.Error("ParseSample without process_open_fds: no error")
	}
}

func TestSamplesRoundTrip(t *testing.T) {
	samples := []Sample{
		{ElapsedSeconds: 0.5, Phase: PhaseLoad, HeapInuseBytes: 1, RSSBytes: 2, Load1: 1.25},
		{ElapsedSeconds: 10.5, Phase: PhaseChurn, Goroutines: 47, OpenFDs: 11, SyncsOK: 9, Changes: 200, Services: 5000, Endpoints: 50000},
	}
	var buf bytes.Buffer
	if err := WriteSamples(&buf, samples); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "samples.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSamples(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(samples, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestSlope(t *testing.T) {
	x := []float64{0, 10, 20, 30}
	if got := Slope(x, []float64{5, 7, 9, 11}); math.Abs(got-0.2) > 1e-12 {
		t.Errorf("Slope of a line = %v, want 0.2", got)
	}
	if got := Slope(x[:1], []float64{1}); !math.IsNaN(got) {
		t.Errorf("Slope of one point = %v, want NaN", got)
	}
}

// soakSamples makes n churn samples 10 s apart, with heap and RSS growing by the
// given MB per 10 minutes on top of a GC-like saw-tooth, and lets tweak change each.
func soakSamples(n int, heapGrowth, rssGrowth float64, tweak func(k int, s *Sample)) []Sample {
	samples := []Sample{{ElapsedSeconds: 0, Phase: PhaseLoad}}
	for k := 1; k <= n; k++ {
		at := float64(k * 10)
		saw := float64(k%4) * 20e6
		s := Sample{
			ElapsedSeconds: at, Phase: PhaseChurn,
			HeapInuseBytes: 150e6 + saw + heapGrowth*1e6*at/600,
			NextGCBytes:    300e6 + heapGrowth*2e6*at/600,
			RSSBytes:       400e6 + saw/2 + rssGrowth*1e6*at/600,
			Goroutines:     47 + float64(k%3), OpenFDs: 11 + float64(k%4),
			SyncsOK: float64(20 * k), Changes: float64(200 * k),
		}
		if tweak != nil {
			tweak(k, &s)
		}
		samples = append(samples, s)
	}
	return append(samples, Sample{ElapsedSeconds: float64(n*10 + 10), Phase: PhaseDelete, SyncsOK: float64(20*n + 5), Changes: float64(200 * n)})
}

// mutation-checked: dropping the live heap criterion from Judge fails "heap leak"
// and "small leak seen in the live heap only"; using
// the first half instead of the second fails "leak starting late"; judging goroutines
// over the second half only fails "goroutine step early"; ignoring the per-interval
// sync check fails "syncs stall"; dropping the fd floor criterion fails "fd leak" and
// "slow fd leak"; the earlier criterion (fd range at most 12) fails "children in
// flight".
func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []Sample
		want    []string // substrings, one per problem
	}{
		{"flat", soakSamples(180, 0, 0, nil), nil},
		{"slow drift under the limits", soakSamples(180, 3, 6, nil), nil},
		{"heap leak", soakSamples(180, 16, 0, nil), []string{"live heap grows", "heap in use grows"}},
		{"small leak seen in the live heap only", soakSamples(180, 6, 0, nil), []string{"live heap grows"}},
		{"rss leak", soakSamples(180, 0, 15, nil), []string{"RSS grows"}},
		{"leak starting late", soakSamples(180, 0, 0, func(k int, s *Sample) {
			if k > 90 {
				s.NextGCBytes += float64(k-90) * 0.4e6
			}
		}), []string{"live heap grows"}},
		{"goroutine step early", soakSamples(180, 0, 0, func(k int, s *Sample) {
			if k > 10 {
				s.Goroutines += 12
			}
		}), []string{"goroutines range over"}},
		{"fd leak", soakSamples(180, 0, 0, func(k int, s *Sample) { s.OpenFDs += float64(k / 10) }), []string{"open fds floor rose by 12", "open fds 20 over the floor"}},
		{"slow fd leak, one per 20 samples", soakSamples(180, 0, 0, func(k int, s *Sample) { s.OpenFDs += float64(k / 20) }), []string{"open fds floor rose by 6"}},
		// The 30-minute run of 2026-12-02: children in flight at some samples.
		{"children in flight", soakSamples(180, 0, 0, func(k int, s *Sample) {
			switch k % 30 {
			case 7:
				s.OpenFDs = 25
			case 19:
				s.OpenFDs = 20
			}
		}), nil},
		{"burst over the bound", soakSamples(180, 0, 0, func(k int, s *Sample) {
			if k == 120 {
				s.OpenFDs = 11 + 19
			}
		}), []string{"open fds 19 over the floor"}},
		{"failed sync", soakSamples(180, 0, 0, func(k int, s *Sample) {
			if k > 100 {
				s.SyncsFailed = 1
			}
		}), []string{"1 failed syncs"}},
		{"syncs stall", soakSamples(180, 0, 0, func(k int, s *Sample) {
			if k == 50 {
				s.SyncsOK = 20 * 49
			}
		}), []string{"no successful sync between 490 s and 500 s"}},
		{"too short", soakSamples(2, 0, 0, nil), []string{"too few to judge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.samples)
			if len(v.Problems) != len(tc.want) {
				t.Fatalf("problems %q, want %d matching %q", v.Problems, len(tc.want), tc.want)
			}
			for i, want := range tc.want {
				if !strings.Contains(v.Problems[i], want) {
					t.Errorf("problem %q, want it to contain %q", v.Problems[i], want)
				}
			}
		})
	}
	v := Judge(soakSamples(180, 0, 0, nil))
	if v.ChurnSamples != 180 || v.Changes != 200*179 || v.ChangesPerSecond != 20 || v.GoroutineMin != 47 || v.GoroutineMax != 49 {
		t.Errorf("Judge figures = %+v", v)
	}
}

func TestSaveChainsAndNormalize(t *testing.T) {
	before := `# Generated by iptables-nft-save
*nat
:PREROUTING ACCEPT [10:600]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
COMMIT
`
	// The same rules, chains listed in another order, other counters.
	same := strings.Replace(strings.Replace(before, ":KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]", ":KUBE-MARK-MASQ - [0:0]\n:KUBE-SERVICES - [0:0]", 1), "[10:600]", "[99:9000]", 1)
	if diff := cmp.Diff(NormalizeSave(before), NormalizeSave(same)); diff != "" {
		t.Errorf("NormalizeSave of the same rules differs:\n%s", diff)
	}
	leftover := strings.Replace(before, "COMMIT", ":KUBE-SVC-ABC - [0:0]\nCOMMIT", 1)
	if cmp.Equal(NormalizeSave(before), NormalizeSave(leftover)) {
		t.Error("NormalizeSave hides a leftover chain")
	}
	if diff := cmp.Diff([]string{"nat/KUBE-MARK-MASQ", "nat/KUBE-SERVICES", "nat/KUBE-SVC-ABC"}, SaveChains(leftover)); diff != "" {
		t.Errorf("SaveChains (-want +got):\n%s", diff)
	}
}

// natFor writes the nat rules a proxy would program for the model, in the shape
// CheckNAT reads.
func natFor(model []ChurnService) string {
	var b strings.Builder
	b.WriteString("*nat\n")
	for i, s := range model {
		if !s.Exists || s.ReadyCount() == 0 {
			continue
		}
		fmt.Fprintf(&b, "-A KUBE-SERVICES -d 10.96.0.%d/32 -p tcp -m comment --comment \"bench/%s:http cluster IP\" -m tcp --dport %d -j %s\n", i, ServiceName(i), s.Port, ServiceChain(i))
		for _, e := range s.Endpoints {
			if e.Ready {
				fmt.Fprintf(&b, "-A %s -m statistic --mode random --probability 0.5 -j %s\n", ServiceChain(i), EndpointChain(i, e.Address))
			}
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// mutation-checked: comparing only the number of jumps in CheckNAT (not the chains)
// fails "endpoint replaced"; skipping the port check fails "old port".
func TestCheckNAT(t *testing.T) {
	model := []ChurnService{
		{Exists: true, Port: 80, Endpoints: []ChurnEndpoint{{"10.244.0.1", true}, {"10.244.0.2", false}}},
		{Exists: false},
		{Exists: true, Port: 83, Endpoints: []ChurnEndpoint{{"10.244.0.3", false}}},
	}
	good := natFor(model)
	if problems := CheckNAT(good, model); len(problems) != 0 {
		t.Errorf("CheckNAT of matching rules: %q", problems)
	}
	stale := append([]ChurnService(nil), model...)
	stale[1] = ChurnService{Exists: true, Port: 80, Endpoints: []ChurnEndpoint{{"10.244.0.9", true}}}
	for _, tc := range []struct {
		name, nat, want string
	}{
		{"endpoint replaced", strings.ReplaceAll(good, EndpointChain(0, "10.244.0.1"), EndpointChain(0, "10.244.0.7")), "svc-00000: "},
		{"not-ready endpoint programmed", good + "-A " + ServiceChain(0) + " -j " + EndpointChain(0, "10.244.0.2") + "\n", "svc-00000: "},
		{"old port", strings.Replace(good, "--dport 80", "--dport 81", 1), `sends port "81"`},
		{"deleted service still dispatched", natFor(stale), "svc-00001 (exists false, 0 ready): still dispatched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := CheckNAT(tc.nat, model)
			if len(problems) != 1 || !strings.Contains(problems[0], tc.want) {
				t.Errorf("problems %q, want one containing %q", problems, tc.want)
			}
		})
	}
}

// TestChurnWritesItsModel runs the churn against client-go's fake clientset and checks
// that what the API holds afterwards is what the model says, for every Service, and
// that the mix and the Service count are as documented.
func TestChurnWritesItsModel(t *testing.T) {
	const services, endpoints, steps = 20, 10, 300
	client := fake.NewClientset()
	loader := &Loader{Client: client, Workers: 4}
	ctx := t.Context()
	if err := loader.Load(ctx, 0, services, endpoints); err != nil {
		t.Fatal(err)
	}
	churn := NewChurn(loader, services, endpoints, 3)
	for k := range steps {
		if kind, err := churn.Step(ctx); err != nil {
			t.Fatalf("step %d (%s): %v", k, kind, err)
		}
		if existing, _ := churn.Totals(); existing < services-1 || existing > services {
			t.Fatalf("step %d: %d Services exist, want %d or %d", k, existing, services-1, services)
		}
	}
	counts := churn.Counts()
	total := 0
	for _, kind := range []string{ChurnEndpointAdd, ChurnEndpointRemove, ChurnReadyFlip, ChurnPortChange, ChurnServiceCreate, ChurnServiceDelete} {
		if counts[kind] == 0 {
			t.Errorf("no %s in %d steps: %v", kind, steps, counts)
		}
		total += counts[kind]
	}
	if total != steps {
		t.Errorf("counts add up to %d, want %d", total, steps)
	}
	for i, s := range churn.Snapshot() {
		svc, err := client.CoreV1().Services(Namespace).Get(ctx, ServiceName(i), metav1.GetOptions{})
		if !s.Exists {
			if err == nil {
				t.Errorf("%s: deleted in the model, present in the API", ServiceName(i))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", ServiceName(i), err)
			continue
		}
		if got := svc.Spec.Ports[0].Port; got != s.Port {
			t.Errorf("%s: port %d, model %d", ServiceName(i), got, s.Port)
		}
		slice, err := client.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, SliceName(i, 0), metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: %v", ServiceName(i), err)
			continue
		}
		var got []ChurnEndpoint
		for _, e := range slice.Endpoints {
			got = append(got, ChurnEndpoint{Address: e.Addresses[0], Ready: *e.Conditions.Ready})
		}
		if diff := cmp.Diff(s.Endpoints, got); diff != "" {
			t.Errorf("%s: endpoints (-model +API):\n%s", ServiceName(i), diff)
		}
		if n := len(s.Endpoints); n < endpoints/2 || n > endpoints*3/2 {
			t.Errorf("%s: %d endpoints, want %d..%d", ServiceName(i), n, endpoints/2, endpoints*3/2)
		}
	}
}
