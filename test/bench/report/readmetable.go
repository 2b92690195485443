package main

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/switchyard-io/switchyard/test/bench"
)

// contenderNames are the benchmark's contender names as an operator reads them: the
// proxy, then the kernel interface it programs.
var contenderNames = map[string]string{
	"switchyard-nft":      "Switchyard, iptables-nft",
	"switchyard-legacy":   "Switchyard, iptables-legacy",
	"switchyard-base-nft": "Switchyard before the change, iptables-nft",
	"switchyard-nftables": "Switchyard, nftables",
	"kube-proxy-nft":      "kube-proxy, iptables-nft",
	"kube-proxy-legacy":   "kube-proxy, iptables-legacy",
	"kube-proxy-nftables": "kube-proxy, nftables",
}

func contenderName(name string) string {
	if display, ok := contenderNames[name]; ok {
		return display
	}
	return name
}

// scaleLabel writes a scale as the README does: 10k × 10, 1 × 10k.
func scaleLabel(s bench.Scale) string {
	count := func(n int) string {
		if n >= 1000 && n%1000 == 0 {
			return fmt.Sprintf("%dk", n/1000)
		}
		return fmt.Sprint(n)
	}
	return count(s.Services) + " × " + count(s.Endpoints)
}

// runLabel names the run a row comes from: the commit measured and the machine's
// one-minute load average as it started, since these shared machines make figures
// comparable only within one run.
func runLabel(r *namedResults) string {
	label := r.Commit
	if load := strings.Fields(r.LoadAtStart); len(load) > 0 {
		label += ", load " + load[0]
	}
	return label
}

// number writes a time in seconds with three significant figures at most.
func number(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// milliseconds writes a time under a second in milliseconds.
func milliseconds(v float64) string {
	if v < 0.01 {
		return fmt.Sprintf("%.1f", v*1000)
	}
	return fmt.Sprintf("%.0f", v*1000)
}

// short writes one time: "831 ms", "8.97 s", "17.8 s", "173 s"; "–" for NaN.
func short(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v < 1:
		return milliseconds(v) + " ms"
	default:
		return number(v) + " s"
	}
}

// shortPtr is short for an optional time.
func shortPtr(v *float64) string {
	if v == nil {
		return "–"
	}
	return short(*v)
}

// timeSeries writes several times in one unit: "204 / 213 / 217 ms" when all are under a
// second, "0.40 / 0.89 / 1.31 s" otherwise.
func timeSeries(values ...float64) string {
	if slices.ContainsFunc(values, math.IsNaN) {
		return "–"
	}
	var parts []string
	if slices.Max(values) < 1 {
		for _, v := range values {
			parts = append(parts, milliseconds(v))
		}
		return strings.Join(parts, " / ") + " ms"
	}
	for _, v := range values {
		parts = append(parts, number(v))
	}
	return strings.Join(parts, " / ") + " s"
}

func mb(n int64) string { return fmt.Sprintf("%.0f", float64(n)/1e6) }

// coldStart is the cold start, or what happened instead.
func coldStart(c *bench.Contender) string {
	if c.ColdStartSeconds != nil {
		return short(*c.ColdStartSeconds)
	}
	text := "not programmed after " + short(c.ColdStartCapSeconds)
	if c.IncrementalSeconds != nil {
		text += fmt.Sprintf(" (incremental: %s)", short(*c.IncrementalSeconds))
	}
	return text
}

// burst is the time to program a burst of changes, with its size when it is not
// the column's 1000.
func burst(c *bench.Contender) string {
	text := shortPtr(c.BurstSeconds)
	if c.BurstSeconds != nil && c.BurstSize > 0 && c.BurstSize != 1000 {
		text += fmt.Sprintf(" (%d changes)", c.BurstSize)
	}
	return text
}

// rss is the peak and final resident set after the steady phase; a proxy that never
// reached it has only the figures read at the cold-start cap.
func rss(c *bench.Contender) string {
	switch {
	case c.Proc.PeakRSSBytes > 0:
		return mb(c.Proc.PeakRSSBytes) + " / " + mb(c.Proc.RSSBytes) + " MB"
	case c.ColdProc != nil && c.ColdProc.PeakRSSBytes > 0:
		return mb(c.ColdProc.PeakRSSBytes) + " / " + mb(c.ColdProc.RSSBytes) + " MB at the cold-start cap"
	default:
		return "–"
	}
}

// restarts is a full sync seen from outside (nftables mode): the median, the range
// and the count.
func restarts(values []float64) string {
	if len(values) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s, n = %d)", short(bench.Quantile(values, .5)), number(slices.Min(values)), number(slices.Max(values)), len(values))
}

// row is one contender at one scale in one run.
type row struct {
	run   *namedResults
	scale *bench.ScaleResult
	*bench.Contender
}

// rows lists every contender of runs in order.
func rows(runs []*namedResults) []row {
	var all []row
	for _, r := range runs {
		for _, s := range r.Scales {
			for _, c := range s.Contenders {
				all = append(all, row{run: r, scale: s, Contender: c})
			}
		}
	}
	return all
}

// contenderTable is the README's comparison of proxies: cold start, one change,
// the proxy's own view of it, a burst and memory; and for nftables mode the full
// sync after a restart when a run measured it. The proxy's own latency is the median
// over the changes, not the mean: a run's first sample can carry the whole loading
// time (1,106 s in bench/results/2026-12-02-mem/after10k), which a mean would show as
// the typical change.
func contenderTable(runs []*namedResults) (string, error) {
	all := rows(runs)
	if len(all) == 0 {
		return "", fmt.Errorf("no contenders in %s", paths(runs))
	}
	withRestarts := slices.ContainsFunc(all, func(r row) bool { return len(r.RestartSeconds) > 0 })
	var b strings.Builder
	b.WriteString("| scale | contender | run (commit, load) | cold start | one change p50 / p90 / p99 | proxy's own programming latency (p50) | burst of 1000 changes | peak / final RSS |")
	if withRestarts {
		b.WriteString(" full sync after a restart: median (range, n) |")
	}
	b.WriteString("\n|---|---|---|---|---|---|---|---|")
	if withRestarts {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range all {
		change := timeSeries(bench.Quantile(r.ChangeSeconds, .5), bench.Quantile(r.ChangeSeconds, .9), bench.Quantile(r.ChangeSeconds, .99))
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |", scaleLabel(r.scale.Scale), contenderName(r.Name), runLabel(r.run),
			coldStart(r.Contender), change, short(bench.Quantile(r.ProgrammingSeconds, .5)), burst(r.Contender), rss(r.Contender))
		if withRestarts {
			fmt.Fprintf(&b, " %s |", restarts(r.RestartSeconds))
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// newServiceReadmeTable is the time to a new service (issue 12 item 4) against the
// floor of the one restore that adds a service, measured in the same run, and the
// latency under churn (item 3) where the run measured it.
func newServiceReadmeTable(runs []*namedResults) (string, error) {
	var measured []row
	for _, r := range rows(runs) {
		if len(r.NewServiceSeconds) > 0 || len(r.ChurnSeconds) > 0 {
			measured = append(measured, r)
		}
	}
	if len(measured) == 0 {
		return "", fmt.Errorf("no new-service or churn figures in %s", paths(runs))
	}
	var b strings.Builder
	b.WriteString("| scale | contender | run (commit, load) | new service p50 / p90 (n) | floor: one restore adding a service | p50 ÷ floor | churn p50 / p99 (changes, rate, missed) |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range measured {
		floor := math.NaN()
		for _, f := range r.scale.Floors {
			if f.Name == bench.FloorAddService && f.Seconds != nil {
				floor = *f.Seconds
			}
		}
		newService, ratio := "–", "–"
		if n := len(r.NewServiceSeconds); n > 0 {
			p50 := bench.Quantile(r.NewServiceSeconds, .5)
			newService = fmt.Sprintf("%s (%d)", timeSeries(p50, bench.Quantile(r.NewServiceSeconds, .9)), n)
			if !math.IsNaN(floor) {
				ratio = fmt.Sprintf("%.2f×", p50/floor)
			}
		}
		churn := "–"
		if n := len(r.ChurnSeconds); n > 0 {
			churn = fmt.Sprintf("%s (%d, %.1f/s, %d missed)", timeSeries(bench.Quantile(r.ChurnSeconds, .5), bench.Quantile(r.ChurnSeconds, .99)), n, r.ChurnRate, r.ChurnMissed)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", scaleLabel(r.scale.Scale), contenderName(r.Name), runLabel(r.run),
			newService, short(floor), ratio, churn)
	}
	return b.String(), nil
}

func paths(runs []*namedResults) string {
	var names []string
	for _, r := range runs {
		names = append(names, r.path)
	}
	return strings.Join(names, ", ")
}
