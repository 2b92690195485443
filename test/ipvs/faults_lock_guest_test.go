//go:build ipvsguest && linux

package ipvs

// Issue 11's "another process holds the xtables lock past the bound, then lets go", in
// IPVS mode in the guest (the iptables-mode case is test/e2e/faults_test.go's
// testLockHeld). iptables-nft takes no xtables lock, so the daemon is restarted on
// iptables-legacy for this case, and back on nft after it.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// xtablesLockFile is iptables-legacy's lock (XT_LOCK_NAME; the daemon's environment
// sets no XTABLES_LOCKFILE). The guest's /run is its own tmpfs.
const xtablesLockFile = "/run/xtables.lock"

// legacyLockWait is the legacy daemon's --iptables-lock-wait: the bound the held lock
// outlasts.
const legacyLockWait = "1s"

// companionTables are the tables IPVS mode writes with iptables: the companion rules
// (nat, filter) and the canary chains (mangle too).
var companionTables = []string{"nat", "filter", "mangle"}

// testGuestLockHeld: the daemon is restarted with --iptables-backend=legacy
// --iptables-lock-wait=1s and converges (dry-run --diff exit 0). Then the legacy nat
// table is flushed, so that the canary check (10 s) asks for a full sync; the
// iptables-legacy-restore wrapper pauses that sync's restore until the test has taken
// /run/xtables.lock, which it then holds: the restore gives up after 1 s, and so does
// each retried full sync, at its iptables-legacy calls (the hooks and canary chains
// are ensured one command each, every one waiting out the bound), before the IPVS
// table.
// /healthz turns 503; web moves from pod-b to pod-a and pod-c through the API and waits
// (pod-b stays the one real server; dry-run --diff exits 1 naming pod-c). The lock is
// let go: the kernel converges to a full render with the change in, /healthz is 200,
// and connections to web reach pod-a and pod-c. Then the daemon goes back to nft.
// The canary check cannot see the flush while the lock is held (iptables-legacy -S CHAIN
// takes the lock too, and a failed check requests nothing), hence the wrapper's handshake
// instead of taking the lock before the flush.
// mutation-checked: an unbounded lock wait (pkg/xtables Exec.Restore passing "-w" with
// no seconds) fails "2 syncs failed on the xtables lock": the restore waits for the
// lock instead of failing, and no sync fails.
func testGuestLockHeld(t, parent *testing.T, d *daemon) *daemon {
	caseStart := time.Now()
	onPodB := expectReal(webClusterIP, webPort, "rr", pods["pod-b"]+":8080")
	if err := onPodB(); err != nil {
		t.Fatalf("before the fault: %v", err)
	}

	// The daemon moves to iptables-legacy: stopped, its nft rules removed (with KUBE-
	// chains in both backends it would refuse to choose, and they would keep matching
	// packets), started with the backend and the bound.
	stopDaemon(t, d)
	flushCompanionTables(t, "iptables-nft")
	legacy := startDaemon(t, "--iptables-backend=legacy", "--iptables-lock-wait="+legacyLockWait)
	eventually(t, legacy, 90*time.Second, "/healthz 200 on iptables-legacy", healthz)
	converged(t, legacy, 60*time.Second, "converged on iptables-legacy")
	if err := companionRulesIn("iptables-legacy-save", true); err != nil {
		t.Fatal(err)
	}
	if err := companionRulesIn("iptables-nft-save", false); err != nil {
		t.Fatal(err)
	}
	switched := time.Since(caseStart)

	// The fault.
	for _, f := range []string{"lock-asked", "lock-held"} {
		clearGuestFlag(t, f)
	}
	setGuestFlag(t, "lock-iptables")
	defer clearGuestFlag(t, "lock-iptables")
	failedBefore := lockFailures(t)
	sh(t, "iptables-legacy", "-w", "5", "-t", "nat", "-F")
	sh(t, "iptables-legacy", "-w", "5", "-t", "nat", "-X")
	eventually(t, legacy, 60*time.Second, "the full sync's iptables-legacy-restore", func() error {
		if _, err := os.Stat(filepath.Join(guestWrappers, "lock-asked")); err != nil {
			return err
		}
		return nil
	})
	release := holdXTablesLock(t)
	defer release()
	held := time.Now()
	setGuestFlag(t, "lock-held")
	red := eventually(t, legacy, 30*time.Second, "/healthz 503 with the xtables lock held", unhealthy)
	announce(t, stepFaultLockEndpointsAC)
	// Two: the restore's, and a retry's.
	eventually(t, legacy, 60*time.Second, "2 syncs failed on the xtables lock", func() error {
		if n := lockFailures(t) - failedBefore; n < 2 {
			return fmt.Errorf("%d failed", n)
		}
		return nil
	})
	eventually(t, legacy, 30*time.Second, "the change seen by dry-run --diff", func() error {
		code, out := dryRunDiff(t)
		if code != 1 || !strings.Contains(out, pods["pod-c"]+":8080") {
			return fmt.Errorf("dry-run --diff exit %d, want 1 naming pod-c's real server:\n%s", code, out)
		}
		return nil
	})
	if err := onPodB(); err != nil {
		t.Errorf("with the xtables lock held, the IPVS table changed: %v", err)
	}
	if err := healthz(); err == nil {
		t.Errorf("/healthz 200 with the xtables lock held")
	}
	failures := lockFailures(t) - failedBefore
	release()
	heldFor := time.Since(held)
	took := converged(t, legacy, 60*time.Second, "converged after the xtables lock was let go")
	green := eventually(t, legacy, 30*time.Second, "/healthz 200", healthz)
	eventually(t, legacy, 10*time.Second, "web rr over pod-a, pod-c", expectReal(webClusterIP, webPort, "rr", pods["pod-a"]+":8080", pods["pod-c"]+":8080"))
	if got := countPods(t, 4, "", fmt.Sprintf("%s:%d", webClusterIP, webPort)); !cmp.Equal(got, map[string]int{"pod-a": 2, "pod-c": 2}) {
		t.Errorf("4 connections to web after the lock was let go: %v, want 2 each on pod-a and pod-c", got)
	}
	if err := companionRulesIn("iptables-legacy-save", true); err != nil {
		t.Error(err)
	}
	t.Logf("FIGURE ipvs: xtables lock held past --iptables-lock-wait=%s (iptables-legacy): /healthz 503 %v after the lock was taken, %d syncs failed on the lock in %v held, the change made meanwhile waited; converged %v after the lock was let go, /healthz 200 %v later",
		legacyLockWait, red.Round(10*time.Millisecond), failures, heldFor.Round(10*time.Millisecond),
		took.Round(10*time.Millisecond), green.Round(10*time.Millisecond))
	if lines := lockLines(t); len(lines) > 1 {
		t.Logf("the first sync failure on the lock (the restore):\n%s", lines[0])
		t.Logf("a retried full sync met the lock %d times before it failed", strings.Count(lines[1], "holding the xtables lock"))
	}

	// Back to nft, as the other cases expect.
	back := time.Now()
	stopDaemon(t, legacy)
	flushCompanionTables(t, "iptables-legacy")
	d = startDaemonOwned(t, parent)
	eventually(t, d, 90*time.Second, "/healthz 200 back on iptables-nft", healthz)
	converged(t, d, 60*time.Second, "converged back on iptables-nft")
	if err := companionRulesIn("iptables-nft-save", true); err != nil {
		t.Error(err)
	}
	t.Logf("the xtables lock case took %v of guest time (switching to legacy %v, back to nft %v)",
		time.Since(caseStart).Round(10*time.Millisecond), switched.Round(10*time.Millisecond), time.Since(back).Round(10*time.Millisecond))
	return d
}

// stopDaemon ends the daemon with SIGTERM and waits for it.
func stopDaemon(t *testing.T, d *daemon) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Fatalf("SIGTERM: the daemon exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the daemon did not exit within 15s of SIGTERM")
	}
}

// flushCompanionTables flushes and deletes every chain of the companion tables with
// program (iptables-nft or iptables-legacy): the guest has no rules of its own there.
func flushCompanionTables(t *testing.T, program string) {
	t.Helper()
	for _, table := range companionTables {
		sh(t, program, "-w", "5", "-t", table, "-F")
		sh(t, program, "-w", "5", "-t", table, "-X")
	}
}

// companionRulesIn checks that save (iptables-legacy-save or iptables-nft-save) shows
// the nat table's KUBE-SERVICES chain (want) or no KUBE- chain at all (!want).
func companionRulesIn(save string, want bool) error {
	out, err := exec.Command(save).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", save, err, out)
	}
	if has := strings.Contains(string(out), ":KUBE-SERVICES "); want && !has {
		return fmt.Errorf("%s has no KUBE-SERVICES chain:\n%s", save, out)
	}
	if has := strings.Contains(string(out), ":KUBE-"); !want && has {
		return fmt.Errorf("%s still has KUBE- chains:\n%s", save, out)
	}
	return nil
}

// holdXTablesLock takes iptables-legacy's lock as another program on the node would
// (a firewall script, a second iptables user), and returns its release, which may be
// called more than once.
func holdXTablesLock(t *testing.T) func() {
	t.Helper()
	f, err := os.OpenFile(xtablesLockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("flock %s: %v", xtablesLockFile, err)
	}
	released := false
	return func() {
		if released {
			return
		}
		released = true
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
			t.Errorf("unlocking %s: %v", xtablesLockFile, err)
		}
		f.Close()
	}
}

// lockLines returns the daemon's log entries of syncs that failed on the xtables lock
// (pkg/runner's "Run failed; will retry", once per failed run, with iptables' "Another
// app is currently holding the xtables lock"); a failed canary
// check, which also meets the lock, requests nothing and does not count. klog writes a
// multi-line error as `err=<`, tab-indented lines, ` >`: an entry runs until the next
// klog header.
func lockLines(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(daemonLog)
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, line := range strings.Split(string(data), "\n") {
		if klogHeader.MatchString(line) || len(entries) == 0 {
			entries = append(entries, line)
			continue
		}
		entries[len(entries)-1] += "\n" + line
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e, "Run failed; will retry") && strings.Contains(e, "holding the xtables lock") {
			out = append(out, e)
		}
	}
	return out
}

// klogHeader starts a klog line: severity, date, time.
var klogHeader = regexp.MustCompile(`^[IWEF]\d{4} \d{2}:`)

// lockFailures counts lockLines.
func lockFailures(t *testing.T) int { return len(lockLines(t)) }
