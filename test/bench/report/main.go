// Command benchreport turns the results-*.json files that TestSyncBench wrote into a
// directory into results.md (a Markdown table) and PNG charts: one-change latency
// against scale, and the distribution of one-change latency at each scale. With
// "soak" first it draws soak.png from the soak-samples.csv that TestSoak wrote
// (make soak). With "readme" first it rewrites the README's generated benchmark
// tables from the results files their markers name (readme.go); with "readme -check"
// it fails instead when they are out of date (hack/lint.sh).
//
//	go -C test/bench/report run . "$PWD/bench/results/2026-11-25"
//	go -C test/bench/report run . soak "$PWD/bench/results/2026-12-02-soak"
//	go -C test/bench/report run . readme "$PWD/README.md"
package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/switchyard-io/switchyard/test/bench"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 2 && args[0] == "soak" {
		return soakReport(args[1])
	}
	if len(args) > 0 && args[0] == "readme" {
		return readmeMain(args[1:])
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: benchreport RESULTS_DIR | benchreport soak SOAK_DIR | benchreport readme [-check] README.md")
		return 2
	}
	dir := args[0]
	files, _ := filepath.Glob(filepath.Join(dir, "results-*.json"))
	if len(files) == 0 {
		fmt.Fprintf(os.Stderr, "benchreport: no results-*.json in %s\n", dir)
		return 1
	}
	slices.Sort(files)
	var runs []*bench.Results
	for _, file := range files {
		r, err := bench.ReadResults(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: %s: %v\n", file, err)
			return 1
		}
		runs = append(runs, r)
	}
	var scales []*bench.ScaleResult
	commits := map[*bench.ScaleResult]string{}
	for _, r := range runs {
		for _, s := range r.Scales {
			commits[s] = r.Commit
		}
		scales = append(scales, r.Scales...)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(tables(runs, scales, commits)), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	if err := latencyVsScale(scales, filepath.Join(dir, "latency-vs-scale.png")); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	if err := fullSyncVsScale(scales, filepath.Join(dir, "full-sync-vs-scale.png")); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	for _, s := range scales {
		if err := distribution(s, filepath.Join(dir, "change-latency-"+s.Scale.String()+".png")); err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
			return 1
		}
	}
	fmt.Println(filepath.Join(dir, "results.md"))
	return 0
}

func seconds(v *float64) string {
	if v == nil {
		return "–"
	}
	return duration(*v)
}

func duration(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v < 1:
		return fmt.Sprintf("%.0f ms", v*1000)
	default:
		return fmt.Sprintf("%.2f s", v)
	}
}

func mean(values []float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	sum := 0.0
	for _, v := range values {
		sum += v
	}
	return sum / float64(len(values))
}

func table(runs []*bench.Results, scales []*bench.ScaleResult, commits map[*bench.ScaleResult]string) string {
	var b strings.Builder
	b.WriteString("| scale | commit | contender | cold start | one change p50 / p90 / p99 (n) | proxy's programming latency, mean | add / delete a service (median) | burst of 1000 | peak RSS | CPU (own + children) | restore bytes per change |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range scales {
		for _, c := range s.Contenders {
			cold := seconds(c.ColdStartSeconds)
			if c.ColdStartSeconds == nil {
				cold = fmt.Sprintf("not programmed after %s", duration(c.ColdStartCapSeconds))
				if c.IncrementalSeconds != nil {
					cold += fmt.Sprintf(" (incremental: %s)", duration(*c.IncrementalSeconds))
				}
			}
			change := "–"
			if len(c.ChangeSeconds) > 0 {
				change = fmt.Sprintf("%s / %s / %s (%d)", duration(bench.Quantile(c.ChangeSeconds, .5)),
					duration(bench.Quantile(c.ChangeSeconds, .9)), duration(bench.Quantile(c.ChangeSeconds, .99)), len(c.ChangeSeconds))
			}
			addDelete := fmt.Sprintf("%s / %s", duration(bench.Quantile(c.AddSeconds, .5)), duration(bench.Quantile(c.DeleteSeconds, .5)))
			burst := seconds(c.BurstSeconds)
			if c.BurstSize > 0 && c.BurstSize != 1000 {
				burst += fmt.Sprintf(" (%d)", c.BurstSize)
			}
			rss, cpu := "–", "–"
			if c.Proc.PeakRSSBytes > 0 {
				rss = fmt.Sprintf("%.0f MB", float64(c.Proc.PeakRSSBytes)/1e6)
				cpu = fmt.Sprintf("%.1f + %.1f s", c.Proc.CPUSeconds, c.Proc.ChildCPUSeconds)
			} else if c.ColdProc != nil && c.ColdProc.PeakRSSBytes > 0 {
				rss = fmt.Sprintf("%.0f MB (at cap)", float64(c.ColdProc.PeakRSSBytes)/1e6)
				cpu = fmt.Sprintf("%.1f + %.1f s (at cap)", c.ColdProc.CPUSeconds, c.ColdProc.ChildCPUSeconds)
			}
			payload := "–"
			if c.PartialPayloadBytes != nil {
				payload = fmt.Sprintf("%.0f B", *c.PartialPayloadBytes)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Scale, commits[s], c.Name, cold, change,
				duration(mean(c.ProgrammingSeconds)), addDelete, burst, rss, cpu, payload)
		}
	}
	b.WriteString(newServiceTable(scales, commits))
	b.WriteString("\nFloors: bare iptables on the ruleset the first nft contender programmed (its `iptables-nft-save -t nat`).\n\n")
	b.WriteString("| scale | nat table | floor | time |\n|---|---|---|---|\n")
	for _, s := range scales {
		for _, f := range s.Floors {
			value := seconds(f.Seconds)
			if f.Seconds == nil {
				value = f.Note
			}
			fmt.Fprintf(&b, "| %s | %d lines, %d chains, %.1f MB | %s | %s |\n", s.Scale, s.NATLines, s.NATChains, float64(s.NATBytes)/1e6, f.Name, value)
		}
	}
	b.WriteString("\nConditions and notes:\n\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "- run started %s on %s, kernel %s, commit %s, load average at start %s\n", r.Started, r.Host, r.Kernel, r.Commit, r.LoadAtStart)
	}
	for _, s := range scales {
		fmt.Fprintf(&b, "- %s: loaded in %.1f s; load average as each contender finished: %s\n", s.Scale, s.LoadSeconds, strings.Join(s.LoadAverages, "; "))
		for _, c := range s.Contenders {
			for _, note := range c.Notes {
				fmt.Fprintf(&b, "- %s %s: %s\n", s.Scale, c.Name, note)
			}
			if len(c.Profiles) > 0 {
				fmt.Fprintf(&b, "- %s %s: profiles %s\n", s.Scale, c.Name, strings.Join(c.Profiles, ", "))
			}
		}
	}
	return b.String()
}

// latencyVsScale plots one-change p50 and p99 against scale, one line per contender.
func latencyVsScale(scales []*bench.ScaleResult, path string) error {
	p := plot.New()
	p.Title.Text = "One endpoint change, write returned → rule in the kernel"
	p.Y.Label.Text = "seconds"
	p.X.Label.Text = "scale (services × endpoints)"
	// One x position per scale, smallest first; a contender measured at a scale in
	// several runs is plotted from the last one.
	var sizes []bench.Scale
	for _, s := range scales {
		if !slices.Contains(sizes, s.Scale) {
			sizes = append(sizes, s.Scale)
		}
	}
	slices.SortFunc(sizes, func(a, b bench.Scale) int {
		return a.Services*a.Endpoints - b.Services*b.Endpoints
	})
	var names []string
	for _, size := range sizes {
		names = append(names, size.String())
	}
	latest := map[string]*bench.Contender{} // by contender and scale
	var order []string
	for _, s := range scales {
		for _, c := range s.Contenders {
			if len(c.ChangeSeconds) == 0 {
				continue
			}
			if !slices.Contains(order, c.Name) {
				order = append(order, c.Name)
			}
			latest[c.Name+" "+s.Scale.String()] = c
		}
	}
	byContender := map[string][2]plotter.XYs{}
	for x, size := range sizes {
		for _, name := range order {
			c, ok := latest[name+" "+size.String()]
			if !ok {
				continue
			}
			lines := byContender[name]
			lines[0] = append(lines[0], plotter.XY{X: float64(x), Y: bench.Quantile(c.ChangeSeconds, .5)})
			lines[1] = append(lines[1], plotter.XY{X: float64(x), Y: bench.Quantile(c.ChangeSeconds, .99)})
			byContender[name] = lines
		}
	}
	var args []any
	for _, name := range order {
		args = append(args, name+" p50", byContender[name][0], name+" p99", byContender[name][1])
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

// distribution draws a box plot of one-change latency per contender at one scale.
func distribution(s *bench.ScaleResult, path string) error {
	p := plot.New()
	p.Title.Text = "One endpoint change latency at " + s.Scale.String() + " (box: quartiles; whiskers: 1.5 IQR)"
	p.Y.Label.Text = "seconds"
	var names []string
	for _, c := range s.Contenders {
		if len(c.ChangeSeconds) == 0 {
			continue
		}
		box, err := plotter.NewBoxPlot(vg.Points(40), float64(len(names)), plotter.Values(c.ChangeSeconds))
		if err != nil {
			return err
		}
		p.Add(box)
		names = append(names, c.Name)
	}
	if len(names) == 0 {
		return nil
	}
	p.NominalX(names...)
	p.Y.Min = 0
	return p.Save(7*vg.Inch, 5*vg.Inch, path)
}
