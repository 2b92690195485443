package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/switchyard-io/switchyard/test/bench"
)

// soakReport draws soak.png from the soak-samples.csv that TestSoak wrote into dir:
// the daemon's memory, goroutines, open fds and sync and change rates over time, one
// panel each, with the phases (load, churn, check, delete) shaded apart.
func soakReport(dir string) int {
	samples, err := bench.ReadSamples(filepath.Join(dir, "soak-samples.csv"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	if len(samples) < 2 {
		fmt.Fprintf(os.Stderr, "benchreport: %d soak samples: nothing to chart\n", len(samples))
		return 1
	}
	path := filepath.Join(dir, "soak.png")
	if err := soakChart(samples, path); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	fmt.Println(path)
	return 0
}

// series is one line of a panel: a name and the value of each sample.
type series struct {
	name  string
	value func(prev, cur bench.Sample) float64
}

func minutes(s bench.Sample) float64 { return s.ElapsedSeconds / 60 }

func soakChart(samples []bench.Sample, path string) error {
	perSecond := func(field func(bench.Sample) float64) func(prev, cur bench.Sample) float64 {
		return func(prev, cur bench.Sample) float64 {
			return (field(cur) - field(prev)) / (cur.ElapsedSeconds - prev.ElapsedSeconds)
		}
	}
	panels := []struct {
		title, unit string
		lines       []series
	}{
		{"Memory", "MB", []series{
			{"RSS", func(_, s bench.Sample) float64 { return s.RSSBytes / 1e6 }},
			{"heap in use", func(_, s bench.Sample) float64 { return s.HeapInuseBytes / 1e6 }},
			{"live heap (GC goal / 2)", func(_, s bench.Sample) float64 { return s.NextGCBytes / 2 / 1e6 }},
		}},
		{"Goroutines and open file descriptors", "count", []series{
			{"goroutines", func(_, s bench.Sample) float64 { return s.Goroutines }},
			{"open fds", func(_, s bench.Sample) float64 { return s.OpenFDs }},
		}},
		{"Rates (per second, over each sample interval)", "per second", []series{
			{"changes written", perSecond(func(s bench.Sample) float64 { return s.Changes })},
			{"successful syncs (both families)", perSecond(func(s bench.Sample) float64 { return s.SyncsOK })},
			{"failed syncs", perSecond(func(s bench.Sample) float64 { return s.SyncsFailed + s.RestoreFailures })},
		}},
		{"Mean sync duration over each interval", "ms", []series{
			{"sync (kubeproxy_sync_proxy_rules_duration_seconds)", func(prev, cur bench.Sample) float64 {
				if n := cur.SyncCount - prev.SyncCount; n > 0 {
					return (cur.SyncSecondsSum - prev.SyncSecondsSum) / n * 1000
				}
				return 0
			}},
		}},
	}
	colors := []color.Color{
		color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	}
	var rows [][]*plot.Plot
	for n, panel := range panels {
		p := plot.New()
		p.Title.Text = panel.title
		p.Y.Label.Text = panel.unit
		if n == len(panels)-1 {
			p.X.Label.Text = "minutes since the daemon started (grey: load, white: churn, blue: check, orange: delete)"
		}
		top := 0.0
		var lines []*plotter.Line
		for k, line := range panel.lines {
			var xys plotter.XYs
			for i := 1; i < len(samples); i++ {
				v := line.value(samples[i-1], samples[i])
				xys = append(xys, plotter.XY{X: minutes(samples[i]), Y: v})
				top = max(top, v)
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return err
			}
			l.Color = colors[k%len(colors)]
			l.Width = vg.Points(1.2)
			lines = append(lines, l)
			p.Legend.Add(line.name, l)
		}
		top = top*1.3 + 1
		// Phase bands first, so that the lines are drawn over them.
		for _, band := range phaseBands(samples, top) {
			p.Add(band)
		}
		p.Add(plotter.NewGrid())
		for _, l := range lines {
			p.Add(l)
		}
		p.Y.Min, p.Y.Max = 0, top
		p.X.Min, p.X.Max = 0, minutes(samples[len(samples)-1])
		p.Legend.Top, p.Legend.Left = true, true
		rows = append(rows, []*plot.Plot{p})
	}
	width, height := 10*vg.Inch, 12*vg.Inch
	img := vgimg.New(width, height)
	canvas := draw.New(img)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(10)}
	canvases := plot.Align(rows, tiles, canvas)
	for i, row := range rows {
		row[0].Draw(canvases[i][0])
	}
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(file); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

// phaseBands shades the load phase grey and the delete phase orange, from 0 to top.
func phaseBands(samples []bench.Sample, top float64) []*plotter.Polygon {
	fills := map[string]color.Color{
		bench.PhaseLoad:   color.RGBA{R: 0xe8, G: 0xe8, B: 0xe8, A: 0xff},
		bench.PhaseCheck:  color.RGBA{R: 0xd8, G: 0xe8, B: 0xf8, A: 0xff},
		bench.PhaseDelete: color.RGBA{R: 0xfd, G: 0xe5, B: 0xc8, A: 0xff},
	}
	var bands []*plotter.Polygon
	for i := 0; i < len(samples); {
		j := i
		for j+1 < len(samples) && samples[j+1].Phase == samples[i].Phase {
			j++
		}
		// A phase runs from its first sample to the next phase's first sample.
		end := minutes(samples[j])
		if j+1 < len(samples) {
			end = minutes(samples[j+1])
		}
		if fill, ok := fills[samples[i].Phase]; ok {
			start := minutes(samples[i])
			polygon, err := plotter.NewPolygon(plotter.XYs{{X: start, Y: 0}, {X: end, Y: 0}, {X: end, Y: top}, {X: start, Y: top}})
			if err == nil {
				polygon.Color = fill
				polygon.LineStyle.Width = 0
				bands = append(bands, polygon)
			}
		}
		i = j + 1
	}
	return bands
}
