//go:build ipvsguest && linux

package ipvs

// Issue 11's faults in IPVS mode, in the guest TestDaemonInVM boots (the iptables-mode
// ones run on the testbed: test/e2e/faults_test.go). docs/reliability.md ("Faults")
// quotes the FIGURE lines.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// guestWrappers is the directory first in the daemon's PATH (startDaemon): wrappers of
// the programs IPVS mode runs to write the kernel, steered by flag files in it.
const guestWrappers = "/tmp/sy-wrappers"

// guestHealthTimeout is the daemon's --healthz-timeout: short, so that a change it
// cannot apply turns /healthz red within seconds (the default is 2 × the 30 s sync
// period), yet long enough for an emulated sync.
const guestHealthTimeout = "3s"

// wrappedPrograms are the programs the daemon could spawn, by fault kind: pkg/xtables
// runs BACKEND-restore for the companion rules; `ipset` is wrapped to show that no
// sync runs it (the sets are programmed over netlink, ipvs.NetlinkIPSets).
var wrappedPrograms = map[string][]string{
	"ipset":    {"ipset"},
	"iptables": {"iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore", "ip6tables-legacy-restore"},
}

// writeGuestWrappers writes a wrapper for each wrapped program that runs the real one
// unless a flag file says otherwise:
//   - "fail-KIND" exists: exit 1 without touching the kernel, counting in
//     "failures-KIND";
//   - "kill-KIND" exists: remove it, SIGKILL the caller (the daemon) and exit 1
//     without touching the kernel;
//   - "lock-KIND" exists: remove it, create "lock-asked" and wait (up to 30 s) for
//     "lock-held" before running the real program: the test takes the xtables lock
//     in between (faults_lock_guest_test.go), so that this very call meets it.
//
// Every call appends "PROGRAM ARG1" to "log".
func writeGuestWrappers(t *testing.T) {
	t.Helper()
	if err := os.MkdirAll(guestWrappers, 0o755); err != nil {
		t.Fatal(err)
	}
	for kind, programs := range wrappedPrograms {
		for _, name := range programs {
			real, err := exec.LookPath(name)
			if err != nil {
				continue // not in this guest's image: the daemon cannot run it either
			}
			script := fmt.Sprintf(`#!/bin/sh
# Fault-injection wrapper of test/ipvs/faults_guest_test.go.
dir=%[1]s
echo "%[2]s $1" >> "$dir/log"
if [ -e "$dir/fail-%[3]s" ]; then
	echo "$(( $(cat "$dir/failures-%[3]s" 2>/dev/null || echo 0) + 1 ))" > "$dir/failures-%[3]s"
	echo "%[2]s: failure injected by the test" >&2
	exit 1
fi
if [ -e "$dir/kill-%[3]s" ]; then
	rm -f "$dir/kill-%[3]s"
	kill -KILL "$PPID"
	exit 1
fi
if [ -e "$dir/lock-%[3]s" ]; then
	rm -f "$dir/lock-%[3]s"
	: > "$dir/lock-asked"
	i=0
	while [ ! -e "$dir/lock-held" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
fi
exec %[4]s "$@"
`, guestWrappers, name, kind, real)
			if err := os.WriteFile(filepath.Join(guestWrappers, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func setGuestFlag(t *testing.T, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(guestWrappers, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func clearGuestFlag(t *testing.T, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(guestWrappers, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

// guestCounter reads a wrapper counter (0 when absent).
func guestCounter(name string) int {
	data, err := os.ReadFile(filepath.Join(guestWrappers, name))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

// wrapperCalls returns the wrappers' calls logged so far ("PROGRAM ARG1").
func wrapperCalls() []string {
	data, err := os.ReadFile(filepath.Join(guestWrappers, "log"))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// converged waits until dry-run --diff exits 0: the kernel equals a full render.
func converged(t *testing.T, d *daemon, timeout time.Duration, what string) time.Duration {
	t.Helper()
	return eventually(t, d, timeout, what, func() error {
		if code, out := dryRunDiff(t); code != 0 || out != "" {
			return fmt.Errorf("dry-run --diff exit %d:\n%s", code, out)
		}
		return nil
	})
}

// unhealthy returns nil once /healthz answers anything but 200.
func unhealthy() error {
	if err := healthz(); err == nil {
		return errors.New("/healthz answers 200")
	}
	return nil
}

// testGuestFaults injects issue 11's faults into the IPVS-mode daemon, in order (each
// starts where the previous one left web's real servers; the first starts, and the
// last ends, with pod-a and pod-b), and checks that the kernel converges to a full
// render (dry-run --diff exit 0), the change made during the fault is programmed, and
// /healthz is 503 while the kernel cannot be programmed and 200 afterwards. It returns the daemon running at the end (the SIGKILL case restarts it).
func testGuestFaults(t *testing.T, d *daemon) *daemon {
	t.Run("iptables-restore fails", func(t *testing.T) { testGuestRestoreFails(t, d) })
	t.Run("no ipset process", func(t *testing.T) { testGuestNoIPSetProcess(t, d) })
	parent := t
	t.Run("SIGKILL at the companion iptables-restore of a full sync", func(t *testing.T) { d = testGuestKilledMidSync(t, parent, d) })
	t.Run("Node deleted and re-created", func(t *testing.T) { testGuestNodeDeleted(t, d) })
	t.Run("a live watch ends with 410 Gone", func(t *testing.T) { testGuestWatchExpired(t, d) })
	t.Run("the node's address changes", func(t *testing.T) { testGuestNodeAddress(t, d) })
	t.Run("xtables lock held (iptables-legacy)", func(t *testing.T) { d = testGuestLockHeld(t, parent, d) })
	t.Run("apiserver outage", func(t *testing.T) { testGuestAPIServerDown(t, d) })
	return d
}

// testGuestRestoreFails: the companion rules' iptables-restore fails while the flag
// is set. Only a full sync runs it (a partial sync changes the IPVS table and the
// ipsets only), so the nat table is flushed first: the canary check (10 s) asks for a
// full sync, which fails, and /healthz turns 503. Then web's endpoints change (pod-b
// leaves): the retried full syncs write the ipsets and fail at iptables-restore,
// before the IPVS table, so pod-b stays a real server meanwhile. Once the restores
// work, the retry converges with the change in.
// mutation-checked: a full sync that goes on after a failed companion restore (pkg/ipvs
// syncFull not returning the Restore error) applies the change and stops retrying:
// this case fails at "3 failed iptables-restores" (2 failed).
func testGuestRestoreFails(t *testing.T, d *daemon) {
	setGuestFlag(t, "fail-iptables")
	defer clearGuestFlag(t, "fail-iptables")
	before := guestCounter("failures-iptables")
	sh(t, "iptables-nft", "-w", "5", "-t", "nat", "-F")
	sh(t, "iptables-nft", "-w", "5", "-t", "nat", "-X")
	red := eventually(t, d, 60*time.Second, "/healthz 503 while iptables-restore fails", unhealthy)
	announce(t, stepFaultEndpointsA)
	eventually(t, d, 60*time.Second, "3 failed iptables-restores", func() error {
		if n := guestCounter("failures-iptables") - before; n < 3 {
			return fmt.Errorf("%d failed", n)
		}
		return nil
	})
	// The change waits: pod-b still takes connections, and dry-run --diff sees it.
	eventually(t, d, 30*time.Second, "the change seen by dry-run --diff", func() error {
		code, out := dryRunDiff(t)
		if code != 1 || !strings.Contains(out, pods["pod-b"]+":8080") {
			return fmt.Errorf("dry-run --diff exit %d, want 1 naming pod-b's real server:\n%s", code, out)
		}
		return nil
	})
	if err := expectReal(webClusterIP, webPort, "rr", pods["pod-a"]+":8080", pods["pod-b"]+":8080")(); err != nil {
		t.Errorf("while iptables-restore fails, the IPVS table changed: %v", err)
	}
	if err := healthz(); err == nil {
		t.Errorf("/healthz 200 while iptables-restore fails")
	}
	failures := guestCounter("failures-iptables") - before
	clearGuestFlag(t, "fail-iptables")
	took := converged(t, d, 60*time.Second, "converged after iptables-restore works again")
	eventually(t, d, 30*time.Second, "/healthz 200", healthz)
	eventually(t, d, 10*time.Second, "web rr over pod-a", expectReal(webClusterIP, webPort, "rr", pods["pod-a"]+":8080"))
	t.Logf("FIGURE ipvs: iptables-restore failing: /healthz 503 %v after the nat flush, %d failed restores survived; converged %v after the fault cleared",
		red.Round(10*time.Millisecond), failures, took.Round(10*time.Millisecond))
}

// testGuestNoIPSetProcess: with every `ipset` call made to fail, web gains pod-c,
// whose hairpin entry (KUBE-LOOP-BACK) the partial sync adds: the sets are programmed
// over netlink, so the change converges, /healthz stays 200, and the daemon never ran
// the ipset program (issue 12: no change spawns a process for the sets).
// Not mutation-checked (each try is a 5-minute guest run): with the ipset program
// (the removed ExecIPSets) this case was the "ipset fails" fault, 503 within 3.2 s.
func testGuestNoIPSetProcess(t *testing.T, d *daemon) {
	setGuestFlag(t, "fail-ipset")
	defer clearGuestFlag(t, "fail-ipset")
	before := guestCounter("failures-ipset")
	announce(t, stepFaultEndpointsAC)
	took := converged(t, d, 60*time.Second, "converged with pod-c's hairpin entry")
	eventually(t, d, 10*time.Second, "web rr over pod-a, pod-c", expectReal(webClusterIP, webPort, "rr", pods["pod-a"]+":8080", pods["pod-c"]+":8080"))
	if err := healthz(); err != nil {
		t.Errorf("/healthz after the change: %v", err)
	}
	if n := guestCounter("failures-ipset") - before; n != 0 {
		t.Errorf("the daemon ran ipset %d times", n)
	}
	for _, call := range wrapperCalls() {
		if strings.HasPrefix(call, "ipset") {
			t.Errorf("the daemon ran %q", call)
		}
	}
	t.Logf("FIGURE ipvs: a change that adds a hairpin ipset entry converged in %v with no ipset process (the program made to fail)",
		took.Round(10*time.Millisecond))
}

// testGuestKilledMidSync: the daemon is stopped, web's endpoints change (pod-b only),
// and it starts again with the iptables wrappers told to SIGKILL it: its first full
// sync has written the ipsets (over netlink) and is killed at the companion rules'
// iptables-restore, before the IPVS table. Started once more, it converges with the change in.
// mutation-checked: a full sync that keeps real servers the render no longer has
// (pkg/ipvs syncReal never deleting) leaves pod-a and pod-c behind and fails the
// convergence wait.
func testGuestKilledMidSync(t, parent *testing.T, d *daemon) *daemon {
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-d.done; err != nil {
		t.Fatalf("SIGTERM: the daemon exited with %v", err)
	}
	d.done <- nil
	announce(t, stepFaultEndpointsB)
	// The daemon is down: the change shows in dry-run --diff (it reads the API).
	eventually(t, d, 60*time.Second, "the host's change visible to dry-run --diff", func() error {
		if code, _ := dryRunDiff(t); code != 1 {
			return fmt.Errorf("exit %d", code)
		}
		return nil
	})
	first := len(wrapperCalls())
	setGuestFlag(t, "kill-iptables")
	defer clearGuestFlag(t, "kill-iptables")
	killed := startDaemon(t)
	select {
	case err := <-killed.done:
		killed.done <- err
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the daemon ended with %v, want SIGKILL", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the daemon was not killed within 90s")
	}
	calls := wrapperCalls()[first:]
	if len(calls) < 1 || !strings.Contains(calls[len(calls)-1], "-restore") {
		t.Fatalf("the killed run's calls: %q, want the iptables-restore it was killed at last", calls)
	}
	if code, out := dryRunDiff(t); code != 1 {
		t.Errorf("after the kill: dry-run --diff exit %d, want 1 (pod-a and pod-c still real servers):\n%s", code, out)
	}
	clearGuestFlag(t, "kill-iptables")
	restart := time.Now()
	// The restarted daemon serves the rest of TestGuestDaemon: its parent stops it.
	d = startDaemonOwned(t, parent)
	eventually(t, d, 90*time.Second, "/healthz 200 after the restart", healthz)
	healthy := time.Since(restart)
	converged(t, d, 60*time.Second, "converged after the restart")
	eventually(t, d, 10*time.Second, "web rr over pod-b", expectReal(webClusterIP, webPort, "rr", pods["pod-b"]+":8080"))
	t.Logf("FIGURE ipvs: SIGKILL at the companion iptables-restore of a full sync, after its ipsets (calls %q); restarted: /healthz 200 in %v, converged in %v",
		calls, healthy.Round(10*time.Millisecond), time.Since(restart).Round(10*time.Millisecond))
	return d
}

// testGuestNodeDeleted: the Node object is deleted (/healthz 503, so load balancers
// drain the node) and re-created (200).
func testGuestNodeDeleted(t *testing.T, d *daemon) {
	announce(t, stepFaultNodeDeleted)
	red := eventually(t, d, 60*time.Second, "/healthz 503 with the Node deleted", unhealthy)
	announce(t, stepFaultNodeCreated)
	green := eventually(t, d, 60*time.Second, "/healthz 200 with the Node re-created", healthz)
	converged(t, d, 60*time.Second, "converged with the Node re-created")
	t.Logf("FIGURE ipvs: Node deleted: /healthz 503 within %v; re-created: 200 within %v", red.Round(10*time.Millisecond), green.Round(10*time.Millisecond))
}

// testGuestWatchExpired: the host's watch proxy, between the daemon and
// kube-apiserver, stops relaying the daemon's EndpointSlice watch and web moves from
// pod-b (where the SIGKILL case left it) to pod-a (the apiserver's MODIFIED event is
// read and withheld); dry-run --diff, which lists
// through the same proxy, sees the change, the daemon does not. Then the proxy ends
// the watch with the apiserver's 410 Gone ("too old resource version"); the host
// checks that the daemon relists (a streaming list), and the guest that the withheld
// change is programmed. /healthz is 200 throughout: the kernel could be programmed,
// and the daemon knew of nothing pending.
// mutation-checked: an UpdateFunc that ignores updates (pkg/controller
// trackerHandler, `UpdateFunc: func(_, obj any) {}`) fails "web rr over pod-a after
// the 410" (web stays on pod-b): the relist delivers the changed slice as an update.
func testGuestWatchExpired(t *testing.T, d *daemon) {
	onPodB := expectReal(webClusterIP, webPort, "rr", pods["pod-b"]+":8080")
	if err := onPodB(); err != nil {
		t.Fatalf("before the fault: %v", err)
	}
	health := pollHealthz()
	announce(t, stepFaultWatchCut)
	eventually(t, d, 60*time.Second, "the withheld change seen by dry-run --diff", func() error {
		code, out := dryRunDiff(t)
		if code != 1 || !strings.Contains(out, pods["pod-a"]+":8080") {
			return fmt.Errorf("dry-run --diff exit %d, want 1 naming pod-a's real server:\n%s", code, out)
		}
		return nil
	})
	// Had the daemon seen the change, a partial sync would have applied it by now.
	time.Sleep(2 * time.Second)
	if err := onPodB(); err != nil {
		t.Fatalf("with its watch silent, the daemon changed the IPVS table: %v", err)
	}
	announce(t, stepFaultWatchExpired)
	took := eventually(t, d, 60*time.Second, "web rr over pod-a after the 410", expectReal(webClusterIP, webPort, "rr", pods["pod-a"]+":8080"))
	converged(t, d, 60*time.Second, "converged after the relist")
	if got := countPods(t, 2, "", fmt.Sprintf("%s:%d", webClusterIP, webPort)); !cmp.Equal(got, map[string]int{"pod-a": 2}) {
		t.Errorf("2 connections to web after the relist: %v, want both on pod-a", got)
	}
	polls, reds := health.stop()
	if len(reds) > 0 {
		t.Errorf("/healthz not 200 at %d of %d polls; first: %s", len(reds), polls, reds[0])
	}
	t.Logf("FIGURE ipvs: EndpointSlice watch cut, web changed, then the watch ended with 410 Gone: the withheld change applied %v after the guest asked for the 410; /healthz 200 at all %d polls",
		took.Round(10*time.Millisecond), polls)
}

// testGuestNodeAddress: the node's address changes: guestIP2 is added to eth0, the
// host makes it the Node's InternalIP and at once moves web from pod-a to pod-b. The
// daemon rebuilds its configuration for the new address: web's node port moves to
// guestIP2 (nodePortAddresses is unset, so node ports follow the Node's addresses),
// over pod-b; then the InternalIP changes back and the node port follows. /healthz
// is 200 throughout.
// mutation-checked: a nodeHandler that never rebuilds (pkg/controller, `same :=
// facts.Equal(current)` -> `same := true`) fails "web's node port on 10.0.2.16" (the
// virtual server stays on 10.0.2.15:30080). So did the code before pkg/ipvs owned a
// node port's virtual server on any address: the rebuilt proxier left the old one.
func testGuestNodeAddress(t *testing.T, d *daemon) {
	sh(t, "ip", "addr", "add", guestIP2+"/24", "dev", "eth0")
	defer func() { _ = exec.Command("ip", "addr", "del", guestIP2+"/24", "dev", "eth0").Run() }()
	health := pollHealthz()
	var took []time.Duration
	for _, step := range []struct{ name, ip, old string }{
		{stepFaultNodeAddress, guestIP2, guestIP},
		{stepFaultNodeAddressBack, guestIP, guestIP2},
	} {
		announce(t, step.name)
		took = append(took, eventually(t, d, 60*time.Second, "web's node port on "+step.ip+", over pod-b", func() error {
			if _, found, err := readVirtualServer(step.old, webNodePort); err != nil || found {
				return fmt.Errorf("a virtual server is still on %s:%d (%v)", step.old, webNodePort, err)
			}
			return expectReal(step.ip, webNodePort, "rr", pods["pod-b"]+":8080")()
		}))
		converged(t, d, 60*time.Second, "converged with the Node's InternalIP "+step.ip)
		if got := countPods(t, 2, "", fmt.Sprintf("%s:%d", step.ip, webNodePort)); !cmp.Equal(got, map[string]int{"pod-b": 2}) {
			t.Errorf("2 connections to web's node port on %s: %v, want both on pod-b", step.ip, got)
		}
	}
	polls, reds := health.stop()
	if len(reds) > 0 {
		t.Errorf("/healthz not 200 at %d of %d polls; first: %s", len(reds), polls, reds[0])
	}
	t.Logf("FIGURE ipvs: the Node's InternalIP changed to another address of the node (and web changed with it): node port moved in %v; changed back: moved back in %v; /healthz 200 at all %d polls",
		took[0].Round(10*time.Millisecond), took[1].Round(10*time.Millisecond), polls)
}

// healthPoll polls /healthz every 250 ms until stopped, recording each answer that is
// not 200.
type healthPoll struct {
	stopped chan struct{}
	done    chan struct{}
	polls   int
	reds    []string
}

func pollHealthz() *healthPoll {
	h := &healthPoll{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			h.polls++
			if err := healthz(); err != nil {
				h.reds = append(h.reds, time.Now().Format(time.TimeOnly)+": "+err.Error())
			}
			select {
			case <-h.stopped:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return h
}

// stop ends the polling and returns the count of polls and the answers not 200.
func (h *healthPoll) stop() (int, []string) {
	close(h.stopped)
	<-h.done
	return h.polls, h.reds
}

// testGuestAPIServerDown: the host stops kube-apiserver for 5 s, starts it again and
// at once moves web back to pod-a and pod-b. /healthz stays 200 throughout (nothing
// the daemon knows of is pending), web keeps answering, and the change arrives.
func testGuestAPIServerDown(t *testing.T, d *daemon) {
	announce(t, stepFaultAPIServerOutage)
	polls, reds, answered, refused := 0, 0, 0, 0
	took := eventually(t, d, 120*time.Second, "web rr over pod-a, pod-b after the apiserver outage", func() error {
		polls++
		if healthz() != nil {
			reds++
		}
		if c, err := dial("", fmt.Sprintf("%s:%d", webClusterIP, webPort), 2*time.Second); err == nil {
			c.Close()
			answered++
		} else {
			refused++
		}
		return expectReal(webClusterIP, webPort, "rr", pods["pod-a"]+":8080", pods["pod-b"]+":8080")()
	})
	if reds > 0 || refused > 0 {
		t.Errorf("during the outage: /healthz not 200 at %d of %d polls, %d of %d connections to web failed", reds, polls, refused, answered+refused)
	}
	converged(t, d, 60*time.Second, "converged after the outage")
	t.Logf("FIGURE ipvs: apiserver down 5 s, then web moved: applied %v after the step began (outage and the informers' backoff included); /healthz 200 at all %d polls, %d connections to web, 0 failed",
		took.Round(10*time.Millisecond), polls, answered)
}

// processes lists the guest's processes (pid and command line), for a failure's log.
func processes() string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		out = append(out, e.Name()+" "+strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
	}
	return strings.Join(out, "\n")
}
