package bench

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

// ProcessSample is one run of a command, measured from outside as a user sees it.
type ProcessSample struct {
	// Wall is from start to exit; CPU is user plus system time.
	Wall, CPU time.Duration
	// MaxRSS is the peak resident set size in bytes (getrusage's ru_maxrss).
	MaxRSS int64
	// OutputBytes and OutputSHA256 describe what it printed on stdout, which is
	// hashed and dropped rather than kept.
	OutputBytes  int64
	OutputSHA256 [sha256.Size]byte
}

// MeasureProcess runs cmd to completion (its Stdout and Stderr are set here) and
// returns its sample; a non-zero exit is an error carrying its stderr. Run through `ip
// netns exec`, which execs the command in place, the sample is the command's own.
func MeasureProcess(cmd *exec.Cmd) (ProcessSample, error) {
	hash := sha256.New()
	out := &countingWriter{w: hash}
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return ProcessSample{}, fmt.Errorf("%s: %w: %s", cmd.Path, err, bytes.TrimSpace(stderr.Bytes()))
	}
	usage, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return ProcessSample{}, errors.New("no rusage on this platform")
	}
	s := ProcessSample{
		Wall:        wall,
		CPU:         cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		MaxRSS:      usage.Maxrss * 1024, // kilobytes on Linux
		OutputBytes: out.n,
	}
	copy(s.OutputSHA256[:], hash.Sum(nil))
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

// MedianSample takes the median of each figure separately; the output is the first
// sample's.
func MedianSample(samples []ProcessSample) ProcessSample {
	pick := func(get func(ProcessSample) int64) int64 {
		values := make([]int64, len(samples))
		for i, s := range samples {
			values[i] = get(s)
		}
		slices.Sort(values)
		return values[len(values)/2]
	}
	m := samples[0]
	m.Wall = time.Duration(pick(func(s ProcessSample) int64 { return int64(s.Wall) }))
	m.CPU = time.Duration(pick(func(s ProcessSample) int64 { return int64(s.CPU) }))
	m.MaxRSS = pick(func(s ProcessSample) int64 { return s.MaxRSS })
	return m
}

// String is "wall 1.23 s, CPU 0.98 s, peak RSS 140 MB, output 47.7 MB".
func (s ProcessSample) String() string {
	return fmt.Sprintf("wall %.2f s, CPU %.2f s, peak RSS %.0f MB, output %.1f MB",
		s.Wall.Seconds(), s.CPU.Seconds(), float64(s.MaxRSS)/1e6, float64(s.OutputBytes)/1e6)
}
