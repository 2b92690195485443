package main

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/switchyard-io/switchyard/test/bench"
)

// isNFT reports whether s is a scale TestNFTablesBench measured: its contenders run
// in --proxy-mode nftables.
func isNFT(s *bench.ScaleResult) bool {
	return slices.ContainsFunc(s.Contenders, func(c *bench.Contender) bool { return strings.HasSuffix(c.Name, "-nftables") })
}

// tables is results.md: the iptables table for TestSyncBench's scales, the nftables
// table for TestNFTablesBench's.
func tables(runs []*bench.Results, scales []*bench.ScaleResult, commits map[*bench.ScaleResult]string) string {
	var nft, other []*bench.ScaleResult
	for _, s := range scales {
		if isNFT(s) {
			nft = append(nft, s)
		} else {
			other = append(other, s)
		}
	}
	if len(nft) == 0 {
		return table(runs, scales, commits)
	}
	var b strings.Builder
	if len(other) > 0 {
		b.WriteString(table(runs, other, commits))
		b.WriteString("\n")
	}
	b.WriteString(nftTable(runs, nft, commits))
	return b.String()
}

func median(values []float64) string { return duration(bench.Quantile(values, .5)) }

func megabytes(n int64) string {
	if n <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

// nftTable writes the nftables-mode table, the targets of issue 14 checked against
// it, the floors and the conditions.
func nftTable(runs []*bench.Results, scales []*bench.ScaleResult, commits map[*bench.ScaleResult]string) string {
	var b strings.Builder
	b.WriteString("## nftables mode\n\n")
	b.WriteString("| scale | commit | contender | cold start (own first sync) | one change p50 / p90 / p99 (n) | proxy's programming latency, mean | add / delete a service (median) | burst of 1000 | full sync: restart → programmed, median (n) | full sync: own, median | peak RSS (after a restart) | steady RSS | CPU (own + children) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range scales {
		for _, c := range s.Contenders {
			cold := seconds(c.ColdStartSeconds)
			if c.ColdStartSeconds == nil {
				cold = fmt.Sprintf("not programmed after %s", duration(c.ColdStartCapSeconds))
			} else if c.ColdFullSyncSeconds != nil {
				cold += fmt.Sprintf(" (%s)", seconds(c.ColdFullSyncSeconds))
			}
			change := "–"
			if len(c.ChangeSeconds) > 0 {
				change = fmt.Sprintf("%s / %s / %s (%d)", duration(bench.Quantile(c.ChangeSeconds, .5)),
					duration(bench.Quantile(c.ChangeSeconds, .9)), duration(bench.Quantile(c.ChangeSeconds, .99)), len(c.ChangeSeconds))
			}
			burst := seconds(c.BurstSeconds)
			if c.BurstSize > 0 && c.BurstSize != 1000 {
				burst += fmt.Sprintf(" (%d)", c.BurstSize)
			}
			restart := "–"
			if len(c.RestartSeconds) > 0 {
				restart = fmt.Sprintf("%s (%d)", median(c.RestartSeconds), len(c.RestartSeconds))
			}
			peak, steady, cpu := "–", "–", "–"
			if c.Proc.PeakRSSBytes > 0 {
				peak, steady = megabytes(c.Proc.PeakRSSBytes), megabytes(c.Proc.RSSBytes)
				cpu = fmt.Sprintf("%.1f + %.1f s", c.Proc.CPUSeconds, c.Proc.ChildCPUSeconds)
			} else if c.ColdProc != nil {
				peak = megabytes(c.ColdProc.PeakRSSBytes) + " (at cap)"
			}
			if c.RestartProc != nil {
				peak += fmt.Sprintf(" (%s)", megabytes(c.RestartProc.PeakRSSBytes))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s |\n", s.Scale, commits[s], c.Name, cold, change,
				duration(mean(c.ProgrammingSeconds)), median(c.AddSeconds), median(c.DeleteSeconds), burst, restart,
				median(c.FullSyncSeconds), peak, steady, cpu)
		}
	}
	b.WriteString("\nCold start: process start on an empty namespace → the first and last benchmark Services dispatch to all their endpoints (the service chain and its map read over netlink in the node's namespace, what `nft list chain` prints, polled every 100 ms); in brackets the proxy's own `kubeproxy_sync_full_proxy_rules_duration_seconds` of that first sync. One change: the EndpointSlice write returned → the new address in the service chain (polled every 2 ms; the probe's own cost is a floor below). Full sync: the proxy stopped, the first and last service chains flushed behind its back, a fresh instance started on the populated table → both programmed again (informer start-up included), and the proxy's own timing of that sync. Peak RSS is VmHWM after the steady phase (in brackets: of the last restarted instance once its full sync was done); steady RSS is VmRSS after the steady phase.\n\n")

	b.WriteString(targets(scales))

	b.WriteString("\nFloors: bare `nft` on each contender's own ruleset (its `nft list table ip kube-proxy`).\n\n")
	b.WriteString("| scale | table (lines, chains, size) | floor | time |\n|---|---|---|---|\n")
	for _, s := range scales {
		for _, f := range s.Floors {
			value := seconds(f.Seconds)
			if f.Seconds == nil {
				value = f.Note
			}
			name, _, _ := strings.Cut(f.Name, ": ")
			size := "–"
			if s.NFTBytes[name] > 0 {
				size = fmt.Sprintf("%s: %d lines, %d chains, %.1f MB", name, s.NFTLines[name], s.NFTChains[name], float64(s.NFTBytes[name])/1e6)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s.Scale, size, f.Name, value)
		}
	}
	b.WriteString("\nConditions and notes:\n\n")
	for _, r := range runs {
		if !slices.ContainsFunc(r.Scales, isNFT) {
			continue
		}
		fmt.Fprintf(&b, "- run started %s on %s, kernel %s, commit %s, load average at start %s; %s\n", r.Started, r.Host, r.Kernel, r.Commit, r.LoadAtStart, strings.Join(r.Notes, "; "))
	}
	for _, s := range scales {
		fmt.Fprintf(&b, "- %s: loaded in %.1f s; load average as each contender finished: %s\n", s.Scale, s.LoadSeconds, strings.Join(s.LoadAverages, "; "))
		for _, c := range s.Contenders {
			for _, note := range c.Notes {
				fmt.Fprintf(&b, "- %s %s: %s\n", s.Scale, c.Name, note)
			}
			if len(c.RestartSeconds) > 0 {
				fmt.Fprintf(&b, "- %s %s: full syncs, restart → programmed %s; own %s\n", s.Scale, c.Name, list(c.RestartSeconds), list(c.FullSyncSeconds))
			}
			if len(c.Profiles) > 0 {
				fmt.Fprintf(&b, "- %s %s: profiles %s\n", s.Scale, c.Name, strings.Join(c.Profiles, ", "))
			}
		}
	}
	return b.String()
}

func list(values []float64) string {
	var parts []string
	for _, v := range values {
		parts = append(parts, duration(v))
	}
	return strings.Join(parts, ", ")
}

// targets checks issue 14's targets for Switchyard's nftables mode: at 10k × 10 one
// change p50 ≤ 50 ms and cold start ≤ 5 s; at 50k × 10 a full sync at least 10× faster
// than kube-proxy's nftables mode (measured in the same run).
func targets(scales []*bench.ScaleResult) string {
	var b strings.Builder
	find := func(s *bench.ScaleResult, name string) *bench.Contender {
		for _, c := range s.Contenders {
			if c.Name == name {
				return c
			}
		}
		return nil
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	for _, s := range scales {
		sy, kp := find(s, "switchyard-nftables"), find(s, "kube-proxy-nftables")
		if sy == nil {
			continue
		}
		if s.Scale == (bench.Scale{Services: 10000, Endpoints: 10}) {
			if p50 := bench.Quantile(sy.ChangeSeconds, .5); !math.IsNaN(p50) {
				fmt.Fprintf(&b, "- Target at %s, one change p50 ≤ 50 ms: %s, %s\n", s.Scale, duration(p50), verdict(p50 <= 0.05))
			} else {
				fmt.Fprintf(&b, "- Target at %s, one change p50 ≤ 50 ms: not measured in this run (see the notes)\n", s.Scale)
			}
			if sy.ColdStartSeconds != nil {
				fmt.Fprintf(&b, "- Target at %s, cold start ≤ 5 s: %s, %s\n", s.Scale, duration(*sy.ColdStartSeconds), verdict(*sy.ColdStartSeconds <= 5))
			} else {
				fmt.Fprintf(&b, "- Target at %s, cold start ≤ 5 s: not programmed, **missed**\n", s.Scale)
			}
		}
		if kp == nil || len(sy.RestartSeconds) == 0 || len(kp.RestartSeconds) == 0 {
			continue
		}
		outside := bench.Quantile(kp.RestartSeconds, .5) / bench.Quantile(sy.RestartSeconds, .5)
		line := fmt.Sprintf("- Full sync at %s, kube-proxy ÷ Switchyard (medians, same run): restart → programmed %.1f×", s.Scale, outside)
		own := bench.Quantile(kp.FullSyncSeconds, .5) / bench.Quantile(sy.FullSyncSeconds, .5)
		if !math.IsNaN(own) {
			line += fmt.Sprintf(", own sync timing %.1f×", own)
		}
		if s.Scale == (bench.Scale{Services: 50000, Endpoints: 10}) {
			line += fmt.Sprintf("; target ≥ 10×: %s (restart → programmed)", verdict(outside >= 10))
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// fullSyncVsScale plots each nftables contender's cold start and full sync (restart →
// programmed, median) against scale.
func fullSyncVsScale(scales []*bench.ScaleResult, path string) error {
	var nft []*bench.ScaleResult
	for _, s := range scales {
		if isNFT(s) {
			nft = append(nft, s)
		}
	}
	if len(nft) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "nftables mode: cold start and full sync (restart → programmed, median)"
	p.Y.Label.Text = "seconds"
	p.X.Label.Text = "scale (services × endpoints)"
	var sizes []bench.Scale
	for _, s := range nft {
		if !slices.Contains(sizes, s.Scale) {
			sizes = append(sizes, s.Scale)
		}
	}
	slices.SortFunc(sizes, func(a, b bench.Scale) int { return a.Services*a.Endpoints - b.Services*b.Endpoints })
	latest := map[string]*bench.Contender{}
	var order []string
	for _, s := range nft {
		for _, c := range s.Contenders {
			if !slices.Contains(order, c.Name) {
				order = append(order, c.Name)
			}
			latest[c.Name+" "+s.Scale.String()] = c
		}
	}
	var names []string
	for _, size := range sizes {
		names = append(names, size.String())
	}
	var args []any
	for _, name := range order {
		var cold, full plotter.XYs
		for x, size := range sizes {
			c, ok := latest[name+" "+size.String()]
			if !ok {
				continue
			}
			if c.ColdStartSeconds != nil {
				cold = append(cold, plotter.XY{X: float64(x), Y: *c.ColdStartSeconds})
			}
			if len(c.RestartSeconds) > 0 {
				full = append(full, plotter.XY{X: float64(x), Y: bench.Quantile(c.RestartSeconds, .5)})
			}
		}
		if len(cold) > 0 {
			args = append(args, name+" cold start", cold)
		}
		if len(full) > 0 {
			args = append(args, name+" full sync", full)
		}
	}
	if len(args) == 0 {
		return nil
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	p.NominalX(names...)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
