package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// TestExecErrorsFromRealIPTables runs xtables.Exec against the real iptables 1.8
// programs, confined to a network namespace the test creates: PATH starts with
// wrappers named like the programs that run them with `ip netns exec`. It checks that
// the errors the kernel's tools report come back classified: the failing payload line,
// a missing chain, and (with the lock file held, through iptables' XTABLES_LOCKFILE)
// a lock timeout.
func TestExecErrorsFromRealIPTables(t *testing.T) {
	requireRoot(t)
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		t.Run(string(backend), func(t *testing.T) {
			ns := netns(t, "err-"+string(backend))
			lockFile := filepath.Join(t.TempDir(), "xtables.lock")
			confine(t, ns, lockFile, "iptables-"+string(backend), "iptables-"+string(backend)+"-restore", "iptables-"+string(backend)+"-save")
			ctx := context.Background()
			ipt, err := xtables.NewExec(v1.IPv4Protocol, backend, time.Second)
			if err != nil {
				t.Fatal(err)
			}

			// A jump to a chain that does not exist: nft reports it at the COMMIT
			// line, legacy at the rule.
			bad := "*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-MISSING\nCOMMIT\n"
			wantLine := map[xtables.Backend]int{xtables.BackendNFT: 4, xtables.BackendLegacy: 3}[backend]
			err = ipt.Restore(ctx, []byte(bad))
			var e *xtables.Error
			if line, _, _ := xtables.FailedLine(err); line != wantLine || !xtables.IsNotFound(err) || !errors.As(err, &e) || e.Chain != "KUBE-SEP-MISSING" {
				t.Errorf("restore with a jump to a missing chain: FailedLine %d (want %d), IsNotFound %v, error:\n%v", line, wantLine, xtables.IsNotFound(err), err)
			}
			if !strings.Contains(fmt.Sprint(err), fmt.Sprintf(">> %d: ", wantLine)) {
				t.Errorf("the error does not quote the payload around line %d:\n%v", wantLine, err)
			}
			if names, err := ipt.ChainNames(ctx, xtables.TableNAT); err != nil || strings.Contains(strings.Join(names, " "), "KUBE-SVC-A") {
				t.Errorf("the failed restore left chains behind: %v %v", names, err)
			}

			// The wrappers reach the namespace: what Exec writes is there.
			if err := ipt.Restore(ctx, []byte("*nat\n:KUBE-SVC-OK - [0:0]\nCOMMIT\n")); err != nil {
				t.Fatal(err)
			}
			if saved := inNetns(t, ns, nil, "iptables-"+string(backend)+"-save", "-t", "nat"); !strings.Contains(saved, ":KUBE-SVC-OK") {
				t.Fatalf("the namespace does not hold what Exec restored:\n%s", saved)
			}

			// A rule in a chain that does not exist, through the single-rule path.
			if err := ipt.EnsureRule(ctx, xtables.TableNAT, "KUBE-NOPE", "-j", "RETURN"); !xtables.IsNotFound(err) {
				t.Errorf("EnsureRule in a missing chain = %v, want IsNotFound", err)
			}

			if backend != xtables.BackendLegacy {
				return // iptables-nft takes no xtables lock
			}
			hold := exec.Command("flock", lockFile, "sleep", "5")
			if err := hold.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = hold.Process.Kill(); _ = hold.Wait() })
			waitLocked(t, lockFile)
			ok := "*nat\n:KUBE-SVC-B - [0:0]\nCOMMIT\n"
			if err := ipt.Restore(ctx, []byte(ok)); !xtables.IsLockTimeout(err) {
				t.Errorf("restore while another program holds the lock = %v, want IsLockTimeout", err)
			}
			if err := ipt.EnsureChain(ctx, xtables.TableNAT, "KUBE-SVC-B"); !xtables.IsLockTimeout(err) {
				t.Errorf("EnsureChain while another program holds the lock = %v, want IsLockTimeout", err)
			}
		})
	}
}

// confine puts wrappers for programs at the front of PATH that run the real ones in
// the namespace ns, with the xtables lock file at lockFile.
func confine(t *testing.T, ns, lockFile string, programs ...string) {
	t.Helper()
	dir := t.TempDir()
	for _, prog := range programs {
		real, err := exec.LookPath(prog)
		if err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("#!/bin/sh\nXTABLES_LOCKFILE=%s exec ip netns exec %s %s \"$@\"\n", lockFile, ns, real)
		if err := os.WriteFile(filepath.Join(dir, prog), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// waitLocked waits until another process holds the lock on file.
func waitLocked(t *testing.T, file string) {
	t.Helper()
	for range 100 {
		if exec.Command("flock", "-n", file, "true").Run() != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never got locked", file)
}
