package testbed_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// crashModeEnv tells TestCrashHelper, run in a child test binary, how to
// end: "panic" or "hang" (the parent then SIGKILLs it).
const crashModeEnv = "SY_TESTBED_CRASH_MODE"

// TestCrashHelper is not a test of its own: the crash tests below run it in
// a child process. It starts a cluster with a node and a pod, prints the
// cluster id, then panics or waits to be killed.
func TestCrashHelper(t *testing.T) {
	mode := os.Getenv(crashModeEnv)
	if mode == "" {
		t.Skip("helper for TestTeardownOnPanic and TestKilledRunIsCleanedUp")
	}
	cluster := testbed.StartControlPlane(t)
	node := cluster.AddNode(t, "crash-node", nil)
	cluster.AddPod(t, node, "crash-pod")
	fmt.Printf("CLUSTER-ID %s\n", cluster.ID)
	switch mode {
	case "panic":
		panic("testbed crash helper: deliberate panic")
	case "hang":
		time.Sleep(5 * time.Minute)
	}
}

// startCrashHelper runs TestCrashHelper in a child process and returns it
// once it printed its cluster id.
func startCrashHelper(t *testing.T, mode string) (*exec.Cmd, string, <-chan error) {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	child.Env = append(os.Environ(), crashModeEnv+"="+mode)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The helper's panic and logs are expected noise: keep them in a file
	// and show them only if this test fails.
	stderrPath := filepath.Join(t.TempDir(), "helper.stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = stderr
	t.Cleanup(func() {
		stderr.Close()
		if t.Failed() {
			output, _ := os.ReadFile(stderrPath)
			t.Logf("crash helper stderr:\n%s", output)
		}
	})
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill() })
	ids := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		var output strings.Builder
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			line := scanner.Text()
			output.WriteString(line + "\n")
			if id, ok := strings.CutPrefix(line, "CLUSTER-ID "); ok {
				ids <- id
			}
		}
		err := child.Wait()
		if err == nil {
			err = fmt.Errorf("helper exited cleanly; output:\n%s", output.String())
		}
		exited <- err
	}()
	select {
	case id := <-ids:
		return child, id, exited
	case err := <-exited:
		t.Fatalf("crash helper exited before printing its cluster id: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("crash helper printed no cluster id within 2m")
	}
	return nil, "", nil
}

// TestTeardownOnPanic: a test that panics still tears its cluster down.
func TestTeardownOnPanic(t *testing.T) {
	testbed.Require(t)
	_, id, exited := startCrashHelper(t, "panic")
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("panicking helper still running after 1m")
	}
	if left := netnsWithPrefix(t, testbed.Prefix+id); len(left) > 0 {
		t.Errorf("namespaces %v left after a panicking test", left)
	}
}

// TestKilledRunIsCleanedUp: SIGKILL a test binary mid-test (as go test
// -timeout or a CI cancel would); its processes die with it and the next
// Cleanup removes its namespaces.
func TestKilledRunIsCleanedUp(t *testing.T) {
	testbed.Require(t)
	child, id, exited := startCrashHelper(t, "hang")
	pids := map[string][]int{}
	for _, netns := range netnsWithPrefix(t, testbed.Prefix+id) {
		output, err := exec.Command("ip", "netns", "pids", netns).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range strings.Fields(string(output)) {
			var pid int
			fmt.Sscan(field, &pid)
			pids[netns] = append(pids[netns], pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no processes found in the namespaces of cluster %s", id)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("helper still running 30s after SIGKILL")
	}

	removed, err := testbed.Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Cleanup removed %v", removed)
	if left := netnsWithPrefix(t, testbed.Prefix+id); len(left) > 0 {
		t.Errorf("namespaces %v left after Cleanup", left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for netns, list := range pids {
		for _, pid := range list {
			for !processGone(pid) && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			if !processGone(pid) {
				t.Errorf("process %d of %s still alive after Cleanup", pid, netns)
			}
		}
	}
}
