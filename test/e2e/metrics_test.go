package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// promFamily is one metric family of a /metrics scrape.
type promFamily struct {
	kind   string
	labels map[string]bool // label names over every series, "le" and "quantile" left out
	series map[string]float64
}

// parseMetrics reads the Prometheus text format well enough to compare two exporters:
// each family's type, the label names of its series, and each series' value keyed by
// its full name and label text (histogram buckets, sums and counts are series of the
// family).
func parseMetrics(text string) map[string]*promFamily {
	families := map[string]*promFamily{}
	family := func(name string) *promFamily {
		f := families[name]
		if f == nil {
			f = &promFamily{labels: map[string]bool{}, series: map[string]float64{}}
			families[name] = f
		}
		return f
	}
	for line := range strings.SplitSeq(text, "\n") {
		if fields := strings.Fields(line); len(fields) == 4 && fields[0] == "#" && fields[1] == "TYPE" {
			family(fields[2]).kind = fields[3]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		key, valueText := line[:cut], line[cut+1:]
		value, err := strconv.ParseFloat(valueText, 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(key, "{")
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed, ok := strings.CutSuffix(name, suffix); ok && families[trimmed] != nil && families[trimmed].kind == "histogram" {
				base = trimmed
			}
		}
		f := family(base)
		f.series[key] = value
		for pair := range strings.SplitSeq(strings.TrimSuffix(labels, "}"), ",") {
			if label, _, ok := strings.Cut(pair, "="); ok && label != "le" && label != "quantile" {
				f.labels[label] = true
			}
		}
	}
	return families
}

// seriesValue returns one series' value from a scrape, if present.
func seriesValue(families map[string]*promFamily, name, key string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	v, ok := f.series[key]
	return v, ok
}

// testMetricsMatchKubeProxy scrapes Switchyard (node-1) and the pinned kube-proxy
// (node-3) before and after the same endpoint change, which both program. Every
// kubeproxy_* family Switchyard exports must exist in kube-proxy's scrape with the
// same type and label names (or be one kube-proxy only shows after a failure), and
// every kube-proxy series that the change moved must exist in Switchyard and have
// moved too (buckets, *_last and *_pending aside, see below).
func (s *suite) testMetricsMatchKubeProxy(t *testing.T) {
	ctx := t.Context()
	if s.kp3 == nil {
		t.Fatal("no kube-proxy peer on node-3")
	}
	scrape := func() (switchyard, kubeProxy map[string]*promFamily) {
		t.Helper()
		sy, err := s.sy1.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := s.kp3.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return parseMetrics(sy), parseMetrics(kp)
	}
	// Earlier subtests' changes may still be syncing, in kube-proxy especially (its
	// min-sync-period and per-family proxiers): a gauge such as
	// kubeproxy_sync_proxy_rules_iptables_total{table="filter"} then moves between the
	// scrapes for reasons unrelated to this change (seen once: 15 -> 9 while
	// Switchyard's, already settled, stayed at 8). Take the "before" scrapes only once
	// neither exporter has synced for 2 s. (kube-proxy's pending gauges cannot tell:
	// its two family proxiers race on them, see compareMetrics.)
	syBefore, kpBefore := scrape()
	for deadline := time.Now().Add(20 * time.Second); !sameSyncs(syBefore, kpBefore, scrape); {
		if time.Now().After(deadline) {
			t.Log("the exporters did not come to rest within 20 s; comparing anyway")
			break
		}
		syBefore, kpBefore = scrape()
	}
	if err := s.cluster.PublishEndpoints(ctx, s.svc("scale"), ready(s.b3)); err != nil {
		t.Fatal(err)
	}
	if err := waitForPods(ctx, s.node1, "tcp", s.addr("scale", 0), names(s.b3), syncWait); err != nil {
		t.Fatalf("switchyard: %v", err)
	}
	if err := waitForPods(ctx, s.node3, "tcp", s.addr("scale", 0), names(s.b3), syncWait); err != nil {
		t.Fatalf("kube-proxy: %v", err)
	}
	// Reachability over IPv4 shows the IPv4 sync is done, not the IPv6 one of the
	// same snapshot (each proxy syncs its families one after the other): compare again
	// until every series kube-proxy moved has moved in Switchyard too, or 15 s pass.
	var syAfter, kpAfter map[string]*promFamily
	var problems, stayed []string
	var compared int
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		syAfter, kpAfter = scrape()
		problems, stayed, compared = compareMetrics(syBefore, syAfter, kpBefore, kpAfter)
		if len(stayed) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range append(problems, stayed...) {
		t.Error(p)
	}
	if compared < 12 {
		t.Errorf("compared %d kubeproxy_* families with kube-proxy, want at least 12", compared)
	}
	key := `kubeproxy_sync_proxy_rules_iptables_last{ip_family="IPv4",table="nat"}`
	if v, _ := seriesValue(syAfter, "kubeproxy_sync_proxy_rules_iptables_last", key); v == 0 {
		t.Errorf("switchyard's %s = 0 after a sync that rewrote a service's chains", key)
	}
	// The other direction: every kubeproxy_* family kube-proxy exports exists in
	// Switchyard too, but for these, listed on purpose (README, "Health and metrics").
	notExported := map[string]string{
		"kubeproxy_proxy_healthz_total": "not exported",
		"kubeproxy_proxy_livez_total":   "not exported",
	}
	for _, name := range slices.Sorted(maps.Keys(kpAfter)) {
		if _, listed := notExported[name]; strings.HasPrefix(name, "kubeproxy_") && syAfter[name] == nil && !listed {
			t.Errorf("kube-proxy exports %s, switchyard does not", name)
		}
	}
	t.Logf("compared %d kubeproxy_* families with kube-proxy", compared)
}

// sameSyncs waits 2 s, scrapes again and reports whether neither exporter synced in
// between (their last-sync timestamps are unchanged).
func sameSyncs(sy, kp map[string]*promFamily, scrape func() (map[string]*promFamily, map[string]*promFamily)) bool {
	time.Sleep(2 * time.Second)
	sy2, kp2 := scrape()
	const last = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
	same := func(a, b map[string]*promFamily) bool {
		if a[last] == nil || b[last] == nil {
			return a[last] == nil && b[last] == nil
		}
		return maps.Equal(a[last].series, b[last].series)
	}
	return same(sy, sy2) && same(kp, kp2)
}

// compareMetrics compares a Switchyard and a kube-proxy scrape taken after the same
// change: problems are differences of presence, type or label names; stayed lists the
// kube-proxy series the change moved that did not move (or do not exist) in Switchyard.
func compareMetrics(syBefore, syAfter, kpBefore, kpAfter map[string]*promFamily) (problems, stayed []string, compared int) {
	// kube-proxy exports these only once the event they count happened.
	onlyAfterEvents := map[string]bool{
		"kubeproxy_sync_proxy_rules_iptables_restore_failures_total":         true,
		"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total": true,
	}
	for _, name := range slices.Sorted(maps.Keys(syAfter)) {
		if !strings.HasPrefix(name, "kubeproxy_") {
			continue
		}
		sy, kp := syAfter[name], kpAfter[name]
		if kp == nil {
			if onlyAfterEvents[name] {
				continue
			}
			problems = append(problems, fmt.Sprintf("switchyard exports %s, which kube-proxy does not", name))
			continue
		}
		compared++
		if sy.kind != kp.kind {
			problems = append(problems, fmt.Sprintf("%s: type %s, kube-proxy %s", name, sy.kind, kp.kind))
		}
		if len(sy.series) > 0 && len(kp.series) > 0 && !maps.Equal(sy.labels, kp.labels) {
			problems = append(problems, fmt.Sprintf("%s: label names %v, kube-proxy %v", name, slices.Sorted(maps.Keys(sy.labels)), slices.Sorted(maps.Keys(kp.labels))))
		}
		for _, key := range slices.Sorted(maps.Keys(kpAfter[name].series)) {
			// Buckets spread differently; *_last is the size of the last write, not a
			// count; *_pending is 0 at rest in both, but kube-proxy's two family
			// proxiers race on the one gauge and can leave it at 1 after both synced.
			if base := strings.Split(key, "{")[0]; strings.HasSuffix(base, "_bucket") || strings.HasSuffix(base, "_last") || strings.HasSuffix(base, "_pending") {
				continue
			}
			before, existed := seriesValue(kpBefore, name, key)
			if !existed || before == kpAfter[name].series[key] {
				continue // kube-proxy's did not move
			}
			syValue, ok := sy.series[key]
			if !ok {
				stayed = append(stayed, fmt.Sprintf("kube-proxy's %s moved (%v -> %v); switchyard has no such series", key, before, kpAfter[name].series[key]))
				continue
			}
			syPrev, hadPrev := seriesValue(syBefore, name, key)
			if hadPrev && syPrev == syValue {
				stayed = append(stayed, fmt.Sprintf("kube-proxy's %s moved (%v -> %v); switchyard's stayed at %v", key, before, kpAfter[name].series[key], syValue))
			}
		}
	}
	return problems, stayed, compared
}
