//go:build ipvsguest && linux

package ipvs

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	libipvs "github.com/moby/ipvs"
)

// dryRunDiff runs `switchyard dry-run --diff` in the guest as an operator would, with
// the daemon's configuration file and node name, and returns its exit code and output.
func dryRunDiff(t *testing.T) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(guestBinDir, "switchyard"), "dry-run", "--diff", "--config", guestConfig, "--node", daemonNode)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), out.String()
	}
	t.Fatalf("dry-run --diff: %v", err)
	return 0, ""
}

// setWebRealServer deletes (weight < 0) or adds a real server of web's virtual server
// behind the daemon's back, over netlink.
func setWebRealServer(t *testing.T, addr string, port uint16, weight int) {
	t.Helper()
	h, err := libipvs.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	svc := &libipvs.Service{Address: net.ParseIP(webClusterIP), Protocol: syscall.IPPROTO_TCP, Port: webPort, AddressFamily: syscall.AF_INET}
	dest := &libipvs.Destination{Address: net.ParseIP(addr), Port: port, AddressFamily: syscall.AF_INET, Weight: weight}
	if weight < 0 {
		err = h.DelDestination(svc, dest)
	} else {
		err = h.NewDestination(svc, dest)
	}
	if err != nil {
		t.Fatalf("changing %s:%d behind the daemon's back: %v", addr, port, err)
	}
}

// testDryRunDiff checks dry-run --diff in IPVS mode against the daemon's kernel state:
// the IPVS table, kube-ipvs0's addresses, the ipsets (as the real `ipset save` prints
// them) and the companion rules compare equal right after the daemon synced; a real
// server deleted behind its back is named with exit 1; put back, exit 0 again.
// mutation-checked: taking a wanted virtual server's real servers from the kernel
// instead of the render (pkg/ipvs FullSyncDiff) makes the deleted one go unnoticed
// (exit 0).
func testDryRunDiff(t *testing.T) {
	if code, out := dryRunDiff(t); code != 0 || out != "" {
		t.Fatalf("dry-run --diff after the daemon's sync: exit %d, want 0 and no output:\n%s", code, out)
	}
	setWebRealServer(t, pods["pod-a"], 8080, -1)
	code, out := dryRunDiff(t)
	want := "\n+-a -t " + webClusterIP + ":80 -r " + pods["pod-a"] + ":8080 -m -w 1\n"
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "--- kernel ip ipvs\n+++ switchyard ip ipvs\n") {
		t.Errorf("with pod-a's real server deleted: exit %d, want 1 and %q:\n%s", code, strings.TrimSpace(want), out)
	}
	t.Logf("with pod-a's real server deleted, exit %d:\n%s", code, out)
	setWebRealServer(t, pods["pod-a"], 8080, 1)
	if code, out := dryRunDiff(t); code != 0 || out != "" {
		t.Errorf("dry-run --diff with the real server back: exit %d, want 0 and no output:\n%s", code, out)
	}
}

// testDeletedBehindItsBack is issue 11's "rules deleted behind Switchyard's back" in
// IPVS mode: pod-a's real server is deleted over netlink (no canary sees that), and
// the nat and filter tables are flushed and their chains deleted, as a firewall reload
// does (the canary chains go too). Within a canary interval (10 s) the daemon's full
// sync rebuilds the companion rules and reconciles the IPVS table, so the kernel
// equals a full render again (dry-run --diff exit 0), and /healthz is 200.
// mutation-checked: not starting the canary check (watchCanary in pkg/controller
// returning at once) leaves dry-run --diff at exit 1 for the whole minute.
func testDeletedBehindItsBack(t *testing.T, d *daemon) {
	setWebRealServer(t, pods["pod-a"], 8080, -1)
	for _, table := range []string{"nat", "filter"} {
		sh(t, "iptables-nft", "-w", "5", "-t", table, "-F")
		sh(t, "iptables-nft", "-w", "5", "-t", table, "-X")
	}
	if code, _ := dryRunDiff(t); code != 1 {
		t.Errorf("after the deletions: dry-run --diff exit %d, want 1", code)
	}
	converged := eventually(t, d, 60*time.Second, "dry-run --diff exit 0 after the deletions", func() error {
		if code, out := dryRunDiff(t); code != 0 || out != "" {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})
	if err := healthz(); err != nil {
		t.Errorf("/healthz after the repair: %v", err)
	}
	t.Logf("FIGURE ipvs: pod-a's real server and the nat and filter tables deleted: converged in %v", converged.Round(10*time.Millisecond))
}
