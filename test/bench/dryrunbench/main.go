// Command dryrunbench times `switchyard dry-run` as a user runs it: a child process,
// from start to exit, with its peak resident memory (getrusage's ru_maxrss) and CPU
// time. Given two binaries it runs them in turn, round after round, checks that they
// print the same bytes, and reports the medians and the ratio, so that the comparison
// is made on the same machine at the same moment (these machines are shared).
//
//	dryrunbench -new bin/switchyard [-old /tmp/old] [-rounds 3] -- dry-run -f dump.json
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"

	"github.com/switchyard-io/switchyard/test/bench"
)

func main() {
	newBin := flag.String("new", "", "the switchyard binary to measure")
	oldBin := flag.String("old", "", "a binary to compare with (optional)")
	rounds := flag.Int("rounds", 3, "runs of each binary")
	flag.Parse()
	if err := run(*newBin, *oldBin, *rounds, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "dryrunbench:", err)
		os.Exit(1)
	}
}

func run(newBin, oldBin string, rounds int, args []string) error {
	if newBin == "" || len(args) == 0 || rounds < 1 {
		return errors.New("usage: dryrunbench -new BIN [-old BIN] [-rounds N] -- ARGS...")
	}
	bins, names := []string{newBin}, []string{"new"}
	if oldBin != "" {
		bins, names = []string{oldBin, newBin}, []string{"old", "new"}
	}
	samples := make([][]bench.ProcessSample, len(bins))
	for range rounds {
		for i, bin := range bins {
			s, err := bench.MeasureProcess(exec.Command(bin, args...))
			if err != nil {
				return fmt.Errorf("%s: %w", names[i], err)
			}
			samples[i] = append(samples[i], s)
		}
	}
	medians := make([]bench.ProcessSample, len(bins))
	for i := range bins {
		medians[i] = bench.MedianSample(samples[i])
		fmt.Printf("%s (median of %d): %v\n", names[i], rounds, medians[i])
	}
	if len(bins) == 2 {
		old, cur := medians[0], medians[1]
		fmt.Printf("new/old: wall %.2f, CPU %.2f, peak RSS %.2f\n", cur.Wall.Seconds()/old.Wall.Seconds(),
			cur.CPU.Seconds()/old.CPU.Seconds(), float64(cur.MaxRSS)/float64(old.MaxRSS))
		if old.OutputSHA256 != cur.OutputSHA256 {
			return errors.New("old and new print different output")
		}
		fmt.Println("old and new output: byte-identical")
	}
	return nil
}
