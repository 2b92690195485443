package iptables

import (
	"flag"
	"syscall"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

var firstCheck = flag.Bool("first-check", false, "BenchmarkCheckCompare: compare every chain, as the first check after a start does")

// BenchmarkCheckCompare is the CPU a periodic check spends besides reading the kernel
// (iptables-save), at 10k services × 10 endpoints: parse the saved tables, render in
// full, compare chain by chain. It runs without the sync lock
// (docs/reliability.md, "Full syncs").
func BenchmarkCheckCompare(b *testing.B) {
	snap := newSyntheticCluster(b, 10000, 10).tracker.Snapshot()
	cfg := testConfig()
	rs := ruleset.New(ruleset.IPv4)
	if err := rs.Apply(Render(snap, cfg, nil).Payload, true); err != nil {
		b.Fatal(err)
	}
	saved := []byte(rs.SaveTable("filter") + rs.SaveTable("nat"))
	var verified *verifiedChains
	if !*firstCheck {
		// The checks after the first: every chain was verified once.
		verified = newVerifiedChains()
		kernel, err := parseTables(string(saved))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := findDrift(kernel, string(Render(snap, cfg, nil).Payload), nil, ruleset.IPv4, excluded{}, verified); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuSeconds(b)
	for b.Loop() {
		kernel, err := parseTables(string(saved))
		if err != nil {
			b.Fatal(err)
		}
		plan := Render(snap, cfg, kernel.chainNames("nat"))
		d, err := findDrift(kernel, string(plan.Payload), nil, ruleset.IPv4, excluded{}, verified)
		if err != nil || len(d.chains) != 0 {
			b.Fatalf("drift %v, err %v", d.chains, err)
		}
	}
	b.ReportMetric((cpuSeconds(b)-cpu)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(len(saved)), "saved-bytes")
}

// cpuSeconds is the process's user and system CPU time so far: on a shared machine the
// wall time of a benchmark says little about its cost.
func cpuSeconds(b *testing.B) float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e9
}
