// Command dryrunbench times `switchyard dry-run` as a user runs it: a child process,
// from start to exit, with its peak resident memory (getrusage's ru_maxrss) and CPU
// time. Given two binaries it runs them in turn, round after round, checks that they
// print the same bytes, and reports the medians and the ratio, so that the comparison
// is made on the same machine at the same moment (these machines are shared).
//
//	dryrunbench -new bin/switchyard [-old /tmp/old] [-rounds 3] -- dry-run -f dump.json
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
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

// sample is one run of one binary.
type sample struct {
	wall, cpu time.Duration
	maxRSS    int64 // bytes
	digest    [sha256.Size]byte
	size      int64
}

func run(newBin, oldBin string, rounds int, args []string) error {
	if newBin == "" || len(args) == 0 {
		return errors.New("usage: dryrunbench -new BIN [-old BIN] [-rounds N] -- ARGS...")
	}
	bins := []string{newBin}
	names := []string{"new"}
	if oldBin != "" {
		bins = append([]string{oldBin}, bins...)
		names = append([]string{"old"}, names...)
	}
	samples := make([][]sample, len(bins))
	for range rounds {
		for i, bin := range bins {
			s, err := measure(bin, args)
			if err != nil {
				return fmt.Errorf("%s: %w", names[i], err)
			}
			samples[i] = append(samples[i], s)
		}
	}
	fmt.Printf("%-4s %5s %10s %10s %12s %12s\n", "bin", "runs", "wall(s)", "cpu(s)", "peakRSS(MB)", "output(MB)")
	medians := make([]sample, len(bins))
	for i := range bins {
		medians[i] = median(samples[i])
		m := medians[i]
		fmt.Printf("%-4s %5d %10.2f %10.2f %12.0f %12.1f\n", names[i], len(samples[i]), m.wall.Seconds(), m.cpu.Seconds(), float64(m.maxRSS)/1e6, float64(m.size)/1e6)
	}
	if len(bins) == 2 {
		old, cur := medians[0], medians[1]
		fmt.Printf("new/old: wall %.2f, cpu %.2f, peak RSS %.2f\n", ratio(cur.wall, old.wall), ratio(cur.cpu, old.cpu), float64(cur.maxRSS)/float64(old.maxRSS))
		if samples[0][0].digest != samples[1][0].digest {
			return errors.New("old and new print different output")
		}
		fmt.Println("old and new output: byte-identical")
	}
	return nil
}

// measure runs bin once with args, output hashed and discarded.
func measure(bin string, args []string) (sample, error) {
	cmd := exec.Command(bin, args...)
	hash := sha256.New()
	counter := &countingWriter{w: hash}
	cmd.Stdout = counter
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v: %s", err, stderr.Bytes())
	}
	usage, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, errors.New("no rusage on this platform")
	}
	s := sample{
		wall:   wall,
		cpu:    cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		maxRSS: usage.Maxrss * 1024, // kilobytes on Linux
		size:   counter.n,
	}
	copy(s.digest[:], hash.Sum(nil))
	return s, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// median takes each figure's median separately.
func median(samples []sample) sample {
	pick := func(get func(sample) int64) int64 {
		values := make([]int64, len(samples))
		for i, s := range samples {
			values[i] = get(s)
		}
		slices.Sort(values)
		return values[len(values)/2]
	}
	return sample{
		wall:   time.Duration(pick(func(s sample) int64 { return int64(s.wall) })),
		cpu:    time.Duration(pick(func(s sample) int64 { return int64(s.cpu) })),
		maxRSS: pick(func(s sample) int64 { return s.maxRSS }),
		size:   samples[0].size,
		digest: samples[0].digest,
	}
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }
