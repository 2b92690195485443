//go:build ipvsguest && linux

package ipvs

// TestGuestDaemon is the guest half of TestDaemonInVM (daemon_test.go): the real
// switchyard daemon in IPVS mode, started as kubeadm starts kube-proxy, against the
// host's kube-apiserver. The node's pods and the outside client are topology()'s.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	libipvs "github.com/moby/ipvs"

	"github.com/switchyard-io/switchyard/pkg/explain"
)

// daemon is the switchyard process in the guest.
type daemon struct {
	cmd  *exec.Cmd
	done chan error
}

// startDaemon runs kubeadm's command line through the kube-proxy link: only --config
// and --hostname-override. Its output goes to daemonLog, whose tail is logged if the
// test fails.
func startDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	return startDaemonOwned(t, t, extra...)
}

// startDaemonOwned is startDaemon for a subtest whose daemon outlives it: owner (the
// parent test) stops it when it ends. extra are Switchyard flags added to the command
// line (the xtables lock case's --iptables-backend=legacy).
func startDaemonOwned(t, owner *testing.T, extra ...string) *daemon {
	t.Helper()
	logFile, err := os.Create(daemonLog)
	if err != nil {
		t.Fatal(err)
	}
	// Plus --healthz-timeout, Switchyard's one flag beside the file here (the faults
	// need /healthz to turn red within seconds), and the fault wrappers first in PATH
	// (faults_guest_test.go; they run the real programs unless a fault is set).
	args := append([]string{"--config=" + guestConfig, "--hostname-override=" + daemonNode,
		"--healthz-timeout=" + guestHealthTimeout}, extra...)
	cmd := exec.Command(filepath.Join(guestBinDir, "kube-proxy"), args...)
	cmd.Env = append(os.Environ(), "PATH="+guestWrappers+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the daemon: %v", err)
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait(); logFile.Close() }()
	owner.Cleanup(func() {
		_ = cmd.Process.Kill()
		if owner.Failed() || os.Getenv("SWITCHYARD_VM_VERBOSE") != "" {
			owner.Logf("daemon log (last 60 lines):\n%s", tail(daemonLog, 60))
			owner.Logf("fault wrappers' calls (last 20):\n%s\nprocesses:\n%s", tail(filepath.Join(guestWrappers, "log"), 20), processes())
		} else if problems := warningsAndErrors(daemonLog); problems != "" {
			owner.Logf("the daemon's warnings and errors:\n%s", problems)
		}
	})
	return d
}

// exited reports whether the daemon has exited, and how.
func (d *daemon) exited() (bool, error) {
	select {
	case err := <-d.done:
		d.done <- err
		return true, err
	default:
		return false, nil
	}
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// warningsAndErrors returns the klog warning and error lines of a log.
func warningsAndErrors(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "W") || strings.HasPrefix(line, "E") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// eventually polls check every 200ms until it returns nil, the daemon exits, or the
// timeout passes; it fails the test with the last error.
func eventually(t *testing.T, d *daemon, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			t.Logf("%s after %v", what, time.Since(start).Round(10*time.Millisecond))
			return time.Since(start)
		}
		if gone, werr := d.exited(); gone {
			t.Fatalf("waiting for %s: the daemon exited (%v); last error: %v", what, werr, err)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// healthz returns nil once /healthz answers 200.
func healthz() error {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + daemonHealthz + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// virtualServer is one TCP virtual server as the kernel holds it.
type virtualServer struct {
	Scheduler string
	// Real lists every real server as "ip:port/weight", sorted.
	Real []string
}

// readVirtualServer reads a TCP virtual server and its real servers back over netlink;
// found is false when the kernel has no such virtual server.
func readVirtualServer(vip string, port uint16) (vs virtualServer, found bool, err error) {
	h, err := libipvs.New("")
	if err != nil {
		return vs, false, err
	}
	defer h.Close()
	svcs, err := h.GetServices()
	if err != nil {
		return vs, false, err
	}
	for _, s := range svcs {
		if s.Protocol != syscall.IPPROTO_TCP || !s.Address.Equal(net.ParseIP(vip)) || s.Port != port {
			continue
		}
		dests, err := h.GetDestinations(s)
		if err != nil {
			return vs, true, err
		}
		vs.Scheduler = s.SchedName
		vs.Real = []string{}
		for _, d := range dests {
			vs.Real = append(vs.Real, fmt.Sprintf("%s:%d/%d", d.Address, d.Port, d.Weight))
		}
		slices.Sort(vs.Real)
		return vs, true, nil
	}
	return vs, false, nil
}

// weighted returns the real servers that take new connections (weight > 0), as ip:port.
func (vs virtualServer) weighted() []string {
	out := []string{}
	for _, r := range vs.Real {
		if addr, weight, _ := strings.Cut(r, "/"); weight != "0" {
			out = append(out, addr)
		}
	}
	return out
}

// expectReal returns a check that the TCP virtual server vip:port exists with the given
// scheduler and exactly these real servers taking new connections.
func expectReal(vip string, port uint16, scheduler string, want ...string) func() error {
	slices.Sort(want)
	if want == nil {
		want = []string{}
	}
	return func() error {
		vs, found, err := readVirtualServer(vip, port)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("no virtual server %s:%d", vip, port)
		}
		if vs.Scheduler != scheduler {
			return fmt.Errorf("virtual server %s:%d has scheduler %q, want %q", vip, port, vs.Scheduler, scheduler)
		}
		if diff := cmp.Diff(want, vs.weighted()); diff != "" {
			return fmt.Errorf("real servers of %s:%d taking connections (-want +got):\n%s\nall: %v", vip, port, diff, vs.Real)
		}
		return nil
	}
}

// boundOnDummy reports whether ip is an address of kube-ipvs0, where IPVS mode binds
// every service IP so the kernel accepts packets for it.
func boundOnDummy(ip string) (bool, error) {
	iface, err := net.InterfaceByName("kube-ipvs0")
	if err != nil {
		return false, err
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(net.ParseIP(ip)) {
			return true, nil
		}
	}
	return false, nil
}

// apiThroughService fetches the apiserver's /version (readable without credentials)
// through the kubernetes Service's cluster IP.
func apiThroughService() error {
	client := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		// The testbed's serving certificate is self-signed and names 10.250.0.1.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a throwaway test cluster
	}}
	resp, err := client.Get(fmt.Sprintf("https://%s:443/version", kubernetesClusterIP))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "gitVersion") {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return nil
}

// masqueradedToNode checks conntrack's entries of connections to the kubernetes
// Service: their replies must come back to the node's address (masqueraded), not to
// the VIP the connection started from.
func masqueradedToNode() error {
	out, err := exec.Command("conntrack", "-L", "-p", "tcp", "--orig-dst", kubernetesClusterIP, "--orig-port-dst", "443").CombinedOutput()
	if err != nil {
		return fmt.Errorf("conntrack -L: %v\n%s", err, out)
	}
	var replies []string
	for _, line := range strings.Split(string(out), "\n") {
		var dsts []string
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "dst="); ok {
				dsts = append(dsts, v)
			}
		}
		if len(dsts) == 2 { // original tuple, then reply tuple
			replies = append(replies, dsts[1])
		}
	}
	if len(replies) == 0 || slices.ContainsFunc(replies, func(r string) bool { return r != guestIP }) {
		return fmt.Errorf("connections to %s:443 are answered to %v, want all to the node's %s (masqueraded):\n%s", kubernetesClusterIP, replies, guestIP, out)
	}
	return nil
}

// announce asks the host for the next API change (see stepMarker).
func announce(t *testing.T, step string) {
	t.Helper()
	t.Logf("asking the host for %q", step)
	fmt.Printf("\n%s%s\n", stepMarker, step)
}

func TestGuestDaemon(t *testing.T) {
	if _, err := os.Stat(guestConfig); err != nil {
		t.Skipf("no %s: this test runs only in the guest TestDaemonInVM boots", guestConfig)
	}
	topology(t)
	web := fmt.Sprintf("%s:%d", webClusterIP, webPort)
	start := time.Now()
	writeGuestWrappers(t)
	d := startDaemon(t)

	// /healthz answers 200 only after the first sync of every family.
	// mutation-checked: pkg/controller's sync (sync.go) without afterSync (health never
	// updated) fails here with HTTP 503 "no successful sync yet"; pkg/kubeproxyconfig
	// ignoring the file's mode (out.Mode = "iptables") fails here too, as the iptables
	// proxier cannot load its rules in this guest (no xt_statistic).
	eventually(t, d, 90*time.Second, "/healthz 200", healthz)
	t.Logf("daemon healthy %v after start", time.Since(start).Round(10*time.Millisecond))

	// The Service and EndpointSlice the host created before the boot: rr over pod-a and
	// pod-b, the service IP bound on kube-ipvs0, and the default/kubernetes Service with
	// the apiserver as its real server.
	eventually(t, d, 30*time.Second, "web rr over pod-a, pod-b", expectReal(webClusterIP, webPort, "rr", pods["pod-a"]+":8080", pods["pod-b"]+":8080"))
	eventually(t, d, 30*time.Second, "kubernetes Service programmed", expectReal(kubernetesClusterIP, 443, "rr", kubernetesEndpoint))
	if ok, err := boundOnDummy(webClusterIP); err != nil || !ok {
		t.Errorf("%s bound on kube-ipvs0: %v, %v; want true", webClusterIP, ok, err)
	}
	t.Run("dry-run --diff", testDryRunDiff)
	t.Run("rules deleted behind its back", func(t *testing.T) { testDeletedBehindItsBack(t, d) })
	faultsStart := time.Now()
	d = testGuestFaults(t, d)
	t.Logf("the fault cases took %v", time.Since(faultsStart).Round(10*time.Millisecond))
	if got := countPods(t, 10, "", web); !cmp.Equal(got, map[string]int{"pod-a": 5, "pod-b": 5}) {
		t.Errorf("10 connections to %s through rr: %v, want 5 each on pod-a and pod-b", web, got)
	}
	// explain --live --mode ipvs reads the kernel the daemon programmed and must agree
	// with the connections just made: the outside client reaches pod-a and pod-b and is
	// masqueraded (it is outside the cluster CIDR); pod-c, a pod of the cluster, is not;
	// a port the Service does not have is refused by KUBE-IPVS-FILTER.
	// mutation-checked: dropping kube-ipvs0's addresses from explain's local addresses
	// (pkg/explain ReadIPVSInput) fails the unknown-port check (not-a-service); reading
	// the ipsets as empty fails the client check (no masquerade predicted).
	eventually(t, d, 20*time.Second, "explain agrees for the outside client", func() error {
		return explainAgrees(client, "192.168.100.2", web, explain.FromOutside, []string{"pod-a", "pod-b"})
	})
	eventually(t, d, 20*time.Second, "explain agrees for pod-c", func() error {
		return explainAgrees("pod-c", pods["pod-c"], web, explain.FromPod, []string{"pod-a", "pod-b"})
	})
	if _, err := dial("", fmt.Sprintf("%s:%d", webClusterIP, webPort+1), 3*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a port %s does not have: %v, want connection refused", webClusterIP, err)
	}
	if err := explainRefuses("192.168.100.2", fmt.Sprintf("%s:%d", webClusterIP, webPort+1), explain.FromOutside, "KUBE-IPVS-FILTER"); err != nil {
		t.Error(err)
	}
	// A process on the node reaches kube-apiserver through default/kubernetes: IPVS
	// sends 10.96.0.1:443 to 10.250.0.1:6443 out of eth0. The connection's source is the
	// VIP itself (a local address), so the daemon's KUBE-MARK-MASQ rule for sources
	// outside the cluster CIDR must masquerade it to the node's address; QEMU's user
	// network answers any source, so conntrack's reply tuple is what shows it.
	// mutation-checked: pkg/ipvs's cluster-IP rule jumping to RETURN instead of
	// KUBE-MARK-MASQ fails the conntrack check (reply to 10.96.0.1), not the fetch.
	eventually(t, d, 20*time.Second, "kube-apiserver through the kubernetes Service", apiThroughService)
	if err := masqueradedToNode(); err != nil {
		t.Error(err)
	}

	// An endpoint change through the API: pod-a leaves (drained: weight 0 until its
	// connections are gone), pod-c arrives.
	// mutation-checked: pkg/ipvs never lowering a removed real server's weight
	// (`if a.real[addr] != 0` -> `if false`) fails the wait below: pod-a keeps weight 1.
	announce(t, stepEndpointsBC)
	eventually(t, d, 60*time.Second, "web rr over pod-b, pod-c", expectReal(webClusterIP, webPort, "rr", pods["pod-b"]+":8080", pods["pod-c"]+":8080"))
	if got := countPods(t, 10, "", web); !cmp.Equal(got, map[string]int{"pod-b": 5, "pod-c": 5}) {
		t.Errorf("10 connections to %s after the change: %v, want 5 each on pod-b and pod-c", web, got)
	}

	// No endpoints: the virtual server stays, takes nothing, and a connection is refused
	// at once (REJECT), not left to time out.
	announce(t, stepEndpointsNone)
	eventually(t, d, 60*time.Second, "web without endpoints", expectReal(webClusterIP, webPort, "rr"))
	eventually(t, d, 10*time.Second, "connection refused without endpoints", func() error {
		c, err := dial("", web, 3*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("a service without endpoints was answered by %s", c.pod)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("err = %v, want connection refused", err)
		}
		return nil
	})
	if err := explainRefuses("192.168.100.2", web, explain.FromOutside, "no real servers"); err != nil {
		t.Error(err)
	}

	// The Service deleted: its virtual server and its address go.
	announce(t, stepDeleteService)
	eventually(t, d, 60*time.Second, "web's virtual server and address removed", func() error {
		if _, found, err := readVirtualServer(webClusterIP, webPort); err != nil || found {
			return fmt.Errorf("virtual server %s still present (%v)", web, err)
		}
		if ok, err := boundOnDummy(webClusterIP); err != nil || ok {
			return fmt.Errorf("%s still bound on kube-ipvs0 (%v)", webClusterIP, err)
		}
		return nil
	})
	if err := healthz(); err != nil {
		t.Errorf("/healthz at the end: %v", err)
	}

	// SIGTERM ends the daemon promptly and cleanly, leaving the rules in place (a
	// restart must not cut traffic).
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("after SIGTERM the daemon exited with %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the daemon did not exit within 15s of SIGTERM")
	}
	if err := expectReal(kubernetesClusterIP, 443, "rr", kubernetesEndpoint)(); err != nil {
		t.Errorf("after the daemon stopped: %v; the rules must stay", err)
	}
	t.Logf("guest scenario done in %v", time.Since(start).Round(10*time.Millisecond))
}
