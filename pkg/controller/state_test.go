package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// IP plan: as controller_test.go (node1 at 192.168.0.2, services 172.30.0.0/16, pods
// 10.180.0.0/16).

// familySummary is what these tests compare of a FamilyState: everything but times
// and durations.
type familySummary struct {
	Applied         uint64
	LastSync        string // "kind reason gen error"
	LastFull        string // "reason gen"
	NextFull        string
	Pending         []string
	PendingAll      bool
	PayloadSHA      string
	PayloadGen      uint64
	Changed         []string // State.ChangedSinceSnapshot
	SnapshotGen     uint64
	SnapshotService []string
}

func summarize(st State) familySummary {
	if len(st.Families) != 1 {
		panic("want one family")
	}
	f := st.Families[0]
	s := familySummary{
		Applied: f.AppliedGeneration, NextFull: f.NextFullSyncReason, Pending: f.PendingServices, PendingAll: f.PendingAll,
		PayloadSHA: f.AppliedPayload.SHA256, PayloadGen: f.AppliedPayload.Generation,
		Changed: st.ChangedSinceSnapshot, SnapshotGen: st.Snapshot.Generation,
	}
	if r := f.LastSync; r != nil {
		s.LastSync = strings.TrimSpace(strings.Join([]string{r.Kind, r.Reason, itoa(r.Generation), r.Error}, " "))
	}
	if r := f.LastFullSync; r != nil {
		s.LastFull = r.Reason + " " + itoa(r.Generation)
	}
	for _, svc := range st.Snapshot.Services {
		for _, p := range svc.Ports {
			for _, ep := range p.Endpoints {
				s.SnapshotService = append(s.SnapshotService, p.ServicePortName+" -> "+ep.Address.String()+":"+itoa(uint64(ep.Port)))
			}
		}
	}
	return s
}

// rebuildProviders builds c's Providers again, for c.now to be their clock.
func rebuildProviders(t *testing.T, c *Controller) {
	t.Helper()
	facts, err := node.FromNode(testNode())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.buildProviders(context.Background(), facts); err != nil {
		t.Fatal(err)
	}
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestStateFollowsSyncs drives the controller's handlers and syncs by hand over the
// fake kernel and checks the dump after each step: the applied generation, the last
// (full) sync, the pending Services, and that the payload digest is the SHA-256 of
// what the fake kernel's iptables-restore received last.
//
// mutation-checked: computing pendingServices from the tracker's unsnapshotted
// Services only (ignoring ChangedSince of the applied snapshot) fails "extra snapshot";
// recording lastFullSync for failed full syncs fails "failed sync"; hashing the
// payload of every sync, including those with nothing to write, fails "no change";
// dropping the periodic check from SyncState.Status fails "periodic due".
func TestStateFollowsSyncs(t *testing.T) {
	c, kernel := syncedController(t)
	clock := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return clock }
	ctx := context.Background()
	rebuildProviders(t, c) // on the test's clock
	lastRestore := func() string {
		restores := kernel.Restores()
		return sha256Hex(restores[len(restores)-1])
	}
	sync := func(t *testing.T) {
		t.Helper()
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, want familySummary) {
		t.Helper()
		if diff := cmp.Diff(want, summarize(c.State()), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("state (-want +got):\n%s", diff)
		}
	}
	web := []string{"ns/web"}

	// Each step builds on the previous ones.
	t.Run("before the first sync", func(t *testing.T) {
		c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
		c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
		check(t, familySummary{NextFull: proxy.ReasonStart, PendingAll: true, Changed: web})
	})
	var firstDigest string
	t.Run("first sync", func(t *testing.T) {
		sync(t)
		firstDigest = lastRestore()
		check(t, familySummary{Applied: 1, LastSync: "full " + proxy.ReasonStart + " 1", LastFull: proxy.ReasonStart + " 1",
			PayloadSHA: firstDigest, PayloadGen: 1, SnapshotGen: 1,
			SnapshotService: []string{"ns/web:http -> 10.180.0.1:8080"}})
	})
	t.Run("API change not synced yet", func(t *testing.T) {
		c.sliceHandler(ctx).OnUpdate(nil, testSlice("web", "10.180.0.1", "10.180.0.2"))
		check(t, familySummary{Applied: 1, LastSync: "full " + proxy.ReasonStart + " 1", LastFull: proxy.ReasonStart + " 1",
			PayloadSHA: firstDigest, PayloadGen: 1, SnapshotGen: 1, Pending: web, Changed: web,
			SnapshotService: []string{"ns/web:http -> 10.180.0.1:8080"}})
	})
	t.Run("extra snapshot", func(t *testing.T) {
		c.tracker.Snapshot() // someone else's: the change is in a snapshot, not applied
		check(t, familySummary{Applied: 1, LastSync: "full " + proxy.ReasonStart + " 1", LastFull: proxy.ReasonStart + " 1",
			PayloadSHA: firstDigest, PayloadGen: 1, SnapshotGen: 2, Pending: web,
			SnapshotService: []string{"ns/web:http -> 10.180.0.1:8080", "ns/web:http -> 10.180.0.2:8080"}})
	})
	var partialDigest string
	t.Run("partial sync", func(t *testing.T) {
		sync(t)
		partialDigest = lastRestore()
		if partialDigest == firstDigest {
			t.Fatal("the partial sync wrote the same payload as the full one")
		}
		check(t, familySummary{Applied: 3, LastSync: "partial  3", LastFull: proxy.ReasonStart + " 1",
			PayloadSHA: partialDigest, PayloadGen: 3, SnapshotGen: 3,
			SnapshotService: []string{"ns/web:http -> 10.180.0.1:8080", "ns/web:http -> 10.180.0.2:8080"}})
	})
	t.Run("no change", func(t *testing.T) {
		restores := len(kernel.Restores())
		sync(t)
		if got := len(kernel.Restores()); got != restores {
			t.Fatalf("a sync without changes ran %d restores", got-restores)
		}
		// Nothing written: the kernel holds what the last payload left.
		check(t, familySummary{Applied: 4, LastSync: "partial  4", LastFull: proxy.ReasonStart + " 1",
			PayloadSHA: partialDigest, PayloadGen: 3, SnapshotGen: 4,
			SnapshotService: []string{"ns/web:http -> 10.180.0.1:8080", "ns/web:http -> 10.180.0.2:8080"}})
	})
	t.Run("full sync requested", func(t *testing.T) {
		providers, _ := c.currentProviders()
		providers[0].RequestFullSync("someone asked")
		check(t, familySummary{Applied: 4, LastSync: "partial  4", LastFull: proxy.ReasonStart + " 1", NextFull: "someone asked",
			PayloadSHA: partialDigest, PayloadGen: 3, SnapshotGen: 4,
			SnapshotService: []string{"ns/web:http -> 10.180.0.1:8080", "ns/web:http -> 10.180.0.2:8080"}})
		sync(t)
		check(t, familySummary{Applied: 5, LastSync: "full someone asked 5", LastFull: "someone asked 5",
			PayloadSHA: lastRestore(), PayloadGen: 5, SnapshotGen: 5,
			SnapshotService: []string{"ns/web:http -> 10.180.0.1:8080", "ns/web:http -> 10.180.0.2:8080"}})
	})
	t.Run("failed sync", func(t *testing.T) {
		digest := lastRestore()
		c.sliceHandler(ctx).OnUpdate(nil, testSlice("web", "10.180.0.2"))
		kernel.FailNext("Restore", errors.New("injected"))
		if err := c.sync(ctx); err == nil {
			t.Fatal("sync succeeded, want the injected failure")
		}
		st := summarize(c.State())
		if !strings.Contains(st.LastSync, "partial  6") || !strings.Contains(st.LastSync, "injected") {
			t.Errorf("last sync %q, want the failed partial sync of generation 6 and its error", st.LastSync)
		}
		st.LastSync = ""
		if diff := cmp.Diff(familySummary{LastFull: "someone asked 5", NextFull: proxy.ReasonFailed, PendingAll: true,
			PayloadSHA: digest, PayloadGen: 5, SnapshotGen: 6,
			SnapshotService: []string{"ns/web:http -> 10.180.0.2:8080"}}, st, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("state (-want +got):\n%s", diff)
		}
		// The retry is full, and fails too: the last full sync is still the last
		// successful one.
		kernel.FailNext("Restore", errors.New("injected again"))
		if err := c.sync(ctx); err == nil {
			t.Fatal("sync succeeded, want the injected failure")
		}
		f := c.State().Families[0]
		if f.LastSync.Kind != "full" || f.LastSync.Reason != proxy.ReasonFailed || f.LastFullSync.Reason != "someone asked" || f.LastFullSync.Generation != 5 {
			t.Errorf("after a failed full sync: last sync %+v, last full sync %+v; want a failed full sync, and the full sync of generation 5", f.LastSync, f.LastFullSync)
		}
	})
	t.Run("no periodic full sync", func(t *testing.T) {
		// iptables mode checks the tables every --full-sync-period instead of
		// rewriting them (proxy.PeriodicChecker): no full sync becomes due.
		sync(t)
		clock = clock.Add(c.cfg.FullSyncPeriod)
		if got := c.State().Families[0].NextFullSyncReason; got != "" {
			t.Errorf("next full sync reason %q, want none", got)
		}
	})
}

// TestStateServedWithoutProfiling checks the choice documented on stateHandler:
// /debug/state is on the metrics address whether or not --profiling is set (like
// kube-proxy's /configz), while /debug/pprof/ needs it. The body is the JSON of State.
// mutation-checked: registering /debug/state under `if c.cfg.EnableProfiling` fails
// "profiling off".
func TestStateServedWithoutProfiling(t *testing.T) {
	for _, profiling := range []bool{false, true} {
		name := map[bool]string{false: "profiling off", true: "profiling on"}[profiling]
		t.Run(name, func(t *testing.T) {
			cfg := Defaults()
			cfg.EnableProfiling = profiling
			c := newController(cfg, "node1", fake.NewClientset())
			rec := httptest.NewRecorder()
			c.metricsMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/state", nil))
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("GET /debug/state: HTTP %d, %s, want 200 application/json", rec.Code, rec.Header().Get("Content-Type"))
			}
			var got State
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("decoding /debug/state: %v\n%s", err, rec.Body)
			}
			if got.Node != "node1" || got.Mode != "iptables" || got.Families == nil || got.Snapshot.Services == nil {
				t.Errorf("GET /debug/state = %+v, want node1, iptables, empty families and services", got)
			}
		})
	}
}

// TestStateGolden renders the dump of a small dual-ported, dual-endpoint world with a
// fixed clock and compares it with testdata/state.json, the example in
// docs/debugging.md (rewrite with -rewrite). It pins the JSON field names.
func TestStateGolden(t *testing.T) {
	c, _ := syncedController(t)
	c.now = func() time.Time { return time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC) }
	ctx := context.Background()
	rebuildProviders(t, c)
	c.serviceHandler(ctx).OnAdd(lbLocal(), false)
	c.sliceHandler(ctx).OnAdd(lbSlice("lb-v4", "IPv4", lbEndpoint("10.180.0.1", "node1", true), lbEndpoint("10.180.1.1", "node2", false)), false)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
	rec := httptest.NewRecorder()
	c.metricsMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/state", nil))
	golden := filepath.Join("testdata", "state.json")
	if *rewrite {
		if err := os.WriteFile(golden, rec.Body.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), rec.Body.String()); diff != "" {
		t.Errorf("/debug/state (-%s +got):\n%s", golden, diff)
	}
}

// TestStateLoggedOnSignal checks that each signal logs the dump once, at verbosity 0,
// as one log line whose "state" value is the JSON document.
// mutation-checked: logging it at V(2) fails; passing string(json) instead of the
// struct (klog then quotes it) fails the decoding.
func TestStateLoggedOnSignal(t *testing.T) {
	c, _ := syncedController(t)
	ctx, logs := loggedContext(0)
	c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
	c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	ctx, cancel := context.WithCancel(ctx)
	signals := make(chan os.Signal) // unbuffered: each send waits for the loop
	done := make(chan struct{})
	go func() {
		c.logStateOn(ctx, signals)
		close(done)
	}()
	signals <- syscall.SIGUSR1
	signals <- syscall.SIGUSR1 // taken only once the first dump is written
	cancel()
	<-done

	var dumps []State
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if !strings.Contains(line, `"State dump"`) {
			continue
		}
		_, doc, ok := strings.Cut(line, " state=")
		if !ok {
			t.Fatalf("no state= in %q", line)
		}
		var st State
		if err := json.Unmarshal([]byte(doc), &st); err != nil {
			t.Fatalf("the logged state is not JSON: %v\n%s", err, line)
		}
		dumps = append(dumps, st)
	}
	if len(dumps) < 1 || len(dumps) > 2 {
		t.Fatalf("%d dumps logged for two signals, want 1 or 2 (the second may race with the cancellation); log:\n%s", len(dumps), logs)
	}
	want := c.State()
	if diff := cmp.Diff(want, dumps[0], cmpopts.IgnoreFields(State{}, "Time"), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("logged state (-State() +logged):\n%s", diff)
	}
}

// TestStateConcurrentWithSyncs takes dumps, over HTTP and for the log, while events
// arrive and syncs run, for the race detector (go test -race) to see the locking; and
// checks that every dump decodes and shows no family ahead of its snapshot.
// mutation-checked (with -race): not taking syncMu in State reports a data race on
// syncRecords.
func TestStateConcurrentWithSyncs(t *testing.T) {
	c, _ := syncedController(t)
	ctx := context.Background()
	c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		var problems []string
		mux := c.metricsMux()
		for {
			select {
			case <-stop:
				done <- problems
				return
			default:
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/state", nil))
			var st State
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				problems = append(problems, err.Error())
				continue
			}
			for _, f := range st.Families {
				if f.AppliedGeneration > st.Snapshot.Generation {
					problems = append(problems, "applied generation ahead of the snapshot")
				}
			}
		}
	}()
	for i := range 30 {
		ips := []string{"10.180.0.1"}
		if i%2 == 1 {
			ips = append(ips, "10.180.0.2")
		}
		c.sliceHandler(ctx).OnUpdate(nil, testSlice("web", ips...))
		if err := c.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if problems := <-done; len(problems) > 0 {
		t.Errorf("%d bad dumps, the first: %s", len(problems), problems[0])
	}
}

// TestStateInIPVSMode checks the dump in IPVS mode over the fake kernel: the digest
// is the SHA-256 of the Proxier's AppliedText (whose match with the kernel
// pkg/ipvs's TestStatusDigestsTheKernelState checks), it moves with an endpoint
// change, and the snapshot is the same mode-neutral view.
func TestStateInIPVSMode(t *testing.T) {
	w := newScenarioWorld(t, "ipvs")
	w.run(t, "set-service web 172.30.0.10")
	w.run(t, "set-slice web 10.180.0.1")
	w.run(t, "sync")
	digestOf := func() (State, string) {
		t.Helper()
		st := w.c.State()
		providers, _ := w.c.currentProviders()
		text := providers[0].(*ipvs.Proxier).AppliedText()
		if !strings.Contains(string(text), "-a -t 172.30.0.10:80 -r 10.180.0.1:") {
			t.Errorf("applied text without the real server:\n%s", text)
		}
		return st, sha256Hex(text)
	}
	first, want := digestOf()
	if f := first.Families[0]; f.AppliedPayload.SHA256 != want || f.AppliedGeneration != 1 || f.LastFullSync == nil {
		t.Errorf("first dump: %+v, want digest %s of generation 1 after a full sync", f, want)
	}
	w.run(t, "set-slice web 10.180.0.1 10.180.0.2")
	w.run(t, "sync")
	second, want := digestOf()
	if f := second.Families[0]; f.AppliedPayload.SHA256 != want || f.AppliedPayload.SHA256 == first.Families[0].AppliedPayload.SHA256 ||
		f.AppliedGeneration != 2 || f.LastSync.Kind != "partial" {
		t.Errorf("after a partial sync: %+v, want a new digest %s of generation 2", f, want)
	}
	if got := summarize(second).SnapshotService; len(got) != 2 {
		t.Errorf("snapshot endpoints %v, want two", got)
	}
}
