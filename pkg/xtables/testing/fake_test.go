package testing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// The Fake must keep satisfying the Proxier's kernel interface.
var _ xtables.Interface = (*Fake)(nil)

// IP plan: service 172.30.0.1:80, endpoint 10.180.0.1:80, client pod
// 10.0.1.5, node 192.168.0.2.

const natPayload = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-A1 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -j KUBE-SEP-A1
-A KUBE-SEP-A1 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
COMMIT
`

func TestFakeRestoreIsStrictAndAtomic(t *testing.T) {
	ctx := context.Background()
	fake := NewFake(ruleset.IPv4)
	if err := fake.Restore(ctx, []byte(natPayload)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	before, _ := fake.SaveAll(ctx)

	bad := "*filter\n:KUBE-FORWARD - [0:0]\nCOMMIT\n*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-MISSING\nCOMMIT\n"
	err := fake.Restore(ctx, []byte(bad))
	if line, _, ok := xtables.FailedLine(err); !ok || line != 6 {
		t.Fatalf("Restore error = %v, want a failure at line 6", err)
	}
	after, _ := fake.SaveAll(ctx)
	if diff := cmp.Diff(string(before), string(after)); diff != "" {
		t.Errorf("failed restore changed the rules (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]string{natPayload, bad}, restoreStrings(fake)); diff != "" {
		t.Errorf("Restores (-want +got):\n%s", diff)
	}
}

func restoreStrings(f *Fake) []string {
	var out []string
	for _, payload := range f.Restores() {
		out = append(out, string(payload))
	}
	return out
}

// TestFakeFailNext injects a failure into every operation in turn and checks that
// the failed call returns the injected error having changed nothing, and that the
// same call succeeds (and takes effect) right after.
func TestFakeFailNext(t *testing.T) {
	ctx := context.Background()
	jump := []string{"-j", "KUBE-SVC-A"}
	// Each call changes the rules when it succeeds, where the operation can.
	calls := map[string]func(*Fake) error{
		"Restore": func(f *Fake) error { return f.Restore(ctx, []byte("*nat\n:KUBE-NEW - [0:0]\nCOMMIT\n")) },
		"SaveAll": func(f *Fake) error { _, err := f.SaveAll(ctx); return err },
		"SaveTable": func(f *Fake) error {
			_, err := f.SaveTable(ctx, "nat")
			return err
		},
		"ScanTable": func(f *Fake) error {
			return f.ScanTable(ctx, "nat", func([]byte) error { return nil })
		},
		"ChainNames": func(f *Fake) error {
			_, err := f.ChainNames(ctx, "nat")
			return err
		},
		"ChainExists": func(f *Fake) error {
			_, err := f.ChainExists(ctx, "nat", "KUBE-SVC-A")
			return err
		},
		"EnsureChain": func(f *Fake) error { return f.EnsureChain(ctx, "nat", "KUBE-NEW") },
		"EnsureRule":  func(f *Fake) error { return f.EnsureRule(ctx, "nat", "OUTPUT", jump...) },
		"DeleteRule":  func(f *Fake) error { return f.DeleteRule(ctx, "nat", "PREROUTING", "-j", "KUBE-SERVICES") },
		"DeleteChain": func(f *Fake) error { return f.DeleteChain(ctx, "nat", "KUBE-SEP-A1") },
	}
	if diff := cmp.Diff(Operations, slices.Sorted(maps.Keys(calls)), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Fatalf("operations without a test (-Operations +tested):\n%s", diff)
	}
	for _, op := range Operations {
		t.Run(op, func(t *testing.T) {
			fake := NewFake(ruleset.IPv4)
			if err := fake.Restore(ctx, []byte(natPayload)); err != nil {
				t.Fatal(err)
			}
			// KUBE-SEP-A1 loses its only referrer so that DeleteChain can succeed.
			if err := fake.Restore(ctx, []byte("*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j RETURN\nCOMMIT\n")); err != nil {
				t.Fatal(err)
			}
			before := fake.Ruleset().Save()
			injected := fmt.Errorf("injected into %s: %w", op, LockTimeout())
			fake.FailNext(op, injected)
			if err := calls[op](fake); !errors.Is(err, injected) || !xtables.IsLockTimeout(err) {
				t.Fatalf("%s with a failure injected = %v, want the injected lock timeout", op, err)
			}
			if after := fake.Ruleset().Save(); after != before {
				t.Fatalf("the failed %s changed the rules:\n%s", op, cmp.Diff(before, after))
			}
			if err := calls[op](fake); err != nil {
				t.Fatalf("%s after the injected failure: %v", op, err)
			}
			if op == "Restore" || strings.HasPrefix(op, "Ensure") || strings.HasPrefix(op, "Delete") {
				if fake.Ruleset().Save() == before {
					t.Errorf("%s succeeded but changed nothing; the test does not show the failure was a no-op", op)
				}
			}
		})
	}
}

// TestFakeErrorsAreTyped checks that the fake reports the faults Exec classifies
// with the same *xtables.Error fields and predicates.
func TestFakeErrorsAreTyped(t *testing.T) {
	ctx := context.Background()
	fake := NewFake(ruleset.IPv4)
	bad := "*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-MISSING\nCOMMIT\n"
	err := fake.Restore(ctx, []byte(bad))
	line, text, ok := xtables.FailedLine(err)
	if !ok || line != 3 || text != "-A KUBE-SVC-A -j KUBE-SEP-MISSING" || !xtables.IsNotFound(err) {
		t.Errorf("restore with a jump to a missing chain = %v; FailedLine = %d %q %v, IsNotFound = %v", err, line, text, ok, xtables.IsNotFound(err))
	}
	var e *xtables.Error
	if errors.As(err, &e) && (e.Table != "nat" || e.Chain != "KUBE-SEP-MISSING" || !strings.Contains(err.Error(), ">> 3: -A KUBE-SVC-A")) {
		t.Errorf("error names table %q chain %q, want nat/KUBE-SEP-MISSING and the quoted line:\n%v", e.Table, e.Chain, err)
	}

	err = fake.Restore(ctx, []byte("*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -m tpc -j RETURN\nCOMMIT\n"))
	if line, _, _ := xtables.FailedLine(err); line != 3 || xtables.IsNotFound(err) || xtables.IsLockTimeout(err) {
		t.Errorf("restore with an unknown match = %v, want a plain failure at line 3", err)
	}

	err = fake.EnsureRule(ctx, "nat", "KUBE-NOPE", "-j", "RETURN")
	if !xtables.IsNotFound(err) || !errors.As(err, &e) || e.Chain != "KUBE-NOPE" {
		t.Errorf("EnsureRule in a missing chain = %v, want IsNotFound naming KUBE-NOPE", err)
	}
	if err := fake.EnsureRule(ctx, "nat", "OUTPUT", "-j", "KUBE-NOPE"); !xtables.IsNotFound(err) {
		t.Errorf("EnsureRule jumping to a missing chain = %v, want IsNotFound", err)
	}
	if err := fake.DeleteRule(ctx, "filter", "KUBE-NOPE", "-j", "RETURN"); !xtables.IsNotFound(err) {
		t.Errorf("DeleteRule in a missing chain = %v, want IsNotFound", err)
	}
}

func TestFakeRestoreFlags(t *testing.T) {
	ctx := context.Background()
	fake := NewFake(ruleset.IPv4)
	if err := fake.Restore(ctx, []byte(natPayload)); err != nil {
		t.Fatal(err)
	}
	// Without --noflush the nat table is replaced: KUBE-SVC-A goes away.
	replace := "*nat\n:KUBE-SERVICES - [0:0]\n[3:180] -A PREROUTING -j KUBE-SERVICES\nCOMMIT\n"
	if err := fake.RestoreWithFlags(ctx, []byte(replace), RestoreFlags{Counters: true}); err != nil {
		t.Fatal(err)
	}
	names, err := fake.ChainNames(ctx, "nat")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "KUBE-SERVICES"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("ChainNames (-want +got):\n%s", diff)
	}
}

func TestFakeSaveTable(t *testing.T) {
	ctx := context.Background()
	fake := NewFake(ruleset.IPv4)
	got, err := fake.SaveTable(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("*raw\n:PREROUTING ACCEPT\n:OUTPUT ACCEPT\nCOMMIT\n", string(got)); diff != "" {
		t.Errorf("SaveTable of an unused table (-want +got):\n%s", diff)
	}
	if _, err := fake.SaveTable(ctx, "security"); err == nil {
		t.Errorf("SaveTable of an unknown table should fail")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := fake.Restore(cancelled, []byte(natPayload)); !errors.Is(err, context.Canceled) {
		t.Errorf("Restore with a cancelled context = %v", err)
	}
}

func TestFakeChainOperations(t *testing.T) {
	ctx := context.Background()
	fake := NewFake(ruleset.IPv4)
	jump := []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"}

	if err := fake.EnsureRule(ctx, "nat", "OUTPUT", jump...); err == nil || !strings.Contains(err.Error(), "jump to missing chain KUBE-SERVICES") {
		t.Fatalf("EnsureRule before the chain exists = %v", err)
	}
	for range 2 {
		if err := fake.EnsureChain(ctx, "nat", "KUBE-SERVICES"); err != nil {
			t.Fatalf("EnsureChain: %v", err)
		}
		if err := fake.EnsureRule(ctx, "nat", "OUTPUT", jump...); err != nil {
			t.Fatalf("EnsureRule: %v", err)
		}
	}
	if got := len(fake.Ruleset().Chain("nat", "OUTPUT").Rules); got != 1 {
		t.Errorf("EnsureRule twice left %d rules, want 1", got)
	}
	if ok, err := fake.ChainExists(ctx, "nat", "KUBE-SERVICES"); !ok || err != nil {
		t.Errorf("ChainExists = %v, %v", ok, err)
	}
	if err := fake.DeleteChain(ctx, "nat", "KUBE-SERVICES"); err == nil || !strings.Contains(err.Error(), "still referenced") {
		t.Errorf("DeleteChain of a referenced chain = %v", err)
	}
	for range 2 {
		if err := fake.DeleteRule(ctx, "nat", "OUTPUT", jump...); err != nil {
			t.Fatalf("DeleteRule: %v", err)
		}
		if err := fake.DeleteChain(ctx, "nat", "KUBE-SERVICES"); err != nil {
			t.Fatalf("DeleteChain: %v", err)
		}
	}
	if ok, _ := fake.ChainExists(ctx, "nat", "KUBE-SERVICES"); ok {
		t.Errorf("KUBE-SERVICES still exists")
	}
	if err := fake.EnsureRule(ctx, "nat", "OUTPUT", "-m", "tpc", "-j", "ACCEPT"); err == nil {
		t.Errorf("EnsureRule with an unknown match should fail")
	}
	if n := len(fake.Restores()); n != 0 {
		t.Errorf("chain operations recorded %d restores", n)
	}
}

func TestFakeTraceAfterRestore(t *testing.T) {
	fake := NewFake(ruleset.IPv4)
	if err := fake.Restore(context.Background(), []byte(natPayload)); err != nil {
		t.Fatal(err)
	}
	pkt := tracer.Packet{Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("172.30.0.1"), Proto: "tcp", DstPort: 80}
	got, err := tracer.Trace(fake.Ruleset(), tracer.Node{}, pkt, tracer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.180.0.1:80"}, got.Endpoints); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s\n%s", diff, got)
	}
}

func TestFakeConcurrentUse(t *testing.T) {
	ctx := context.Background()
	fake := NewFake(ruleset.IPv4)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chain := fmt.Sprintf("KUBE-SVC-%d", i)
			payload := fmt.Sprintf("*nat\n:%s - [0:0]\n-A %s -j RETURN\nCOMMIT\n", chain, chain)
			for range 20 {
				if err := fake.Restore(ctx, []byte(payload)); err != nil {
					t.Error(err)
				}
				if _, err := fake.SaveAll(ctx); err != nil {
					t.Error(err)
				}
				_ = fake.Ruleset().Save()
				_, _ = fake.ChainExists(ctx, "nat", xtables.Chain(chain))
			}
		}()
	}
	wg.Wait()
	if n := len(fake.Restores()); n != 160 {
		t.Errorf("recorded %d restores, want 160", n)
	}
	if n := len(fake.Ruleset().ChainNames("nat")); n != 4+8 {
		t.Errorf("nat has %d chains, want 12", n)
	}
}

// TestFakeScanTable checks that ScanTable hands over exactly SaveTable's lines, and
// stops at the first error its callback returns.
func TestFakeScanTable(t *testing.T) {
	ctx := context.Background()
	f := NewFake(ruleset.IPv4)
	if err := f.Restore(ctx, []byte("*nat\n:KUBE-SVC-A - [0:0]\n-A OUTPUT -j KUBE-SVC-A\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	want, err := f.SaveTable(ctx, "nat")
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := f.ScanTable(ctx, "nat", func(line []byte) error { got = append(got, line...); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("scanned lines (-SaveTable +ScanTable):\n%s", diff)
	}
	stop := errors.New("stop")
	lines := 0
	if err := f.ScanTable(ctx, "nat", func([]byte) error { lines++; return stop }); !errors.Is(err, stop) || lines != 1 {
		t.Errorf("callback error: got %v after %d lines, want %v after 1", err, lines, stop)
	}
}
