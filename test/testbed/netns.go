package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every network namespace, link, process
// directory and temporary directory the testbed creates, so leftovers of a
// killed run can be found and removed.
const Prefix = "sy-"

const (
	netnsDir = "/run/netns"
	// lockDir holds one lock file per live Cluster; a namespace whose
	// cluster's lock is not held belongs to a run that died.
	lockDir = "/run/sy-testbed"
)

// ipCommand runs `ip` with the given arguments and returns an error with its
// output when it fails.
func ipCommand(ctx context.Context, args ...string) error {
	output, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(output))
	}
	return nil
}

// ipBatch runs several `ip` commands inside netns in one process (ip -batch),
// which keeps setting up a node or pod to a handful of forks.
func ipBatch(ctx context.Context, netns string, lines ...string) error {
	command := exec.CommandContext(ctx, "ip", "-n", netns, "-batch", "-")
	command.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	output, err := command.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s\ncommands:\n%s", netns, err,
			bytes.TrimSpace(output), strings.Join(lines, "\n"))
	}
	return nil
}

// createNetns adds a network namespace with loopback up and IPv6 duplicate
// address detection off. DAD would keep every new address (link-local ones
// too, which "nodad" does not cover) tentative for a second or more, and the
// first packets of a test would be lost to it. The caller records the
// namespace for teardown before doing anything else with it.
func createNetns(ctx context.Context, name string) error {
	if err := ipCommand(ctx, "netns", "add", name); err != nil {
		return err
	}
	if err := setSysctls(ctx, name, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"); err != nil {
		return err
	}
	return ipBatch(ctx, name, "link set lo up")
}

// execInNetns runs argv inside netns and returns its combined output.
func execInNetns(ctx context.Context, netns string, env []string, argv ...string) ([]byte, error) {
	command := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns}, argv...)...)
	command.Env = env
	var output bytes.Buffer
	command.Stdout = &output
	command.Stderr = &output
	// `ip netns exec` execs argv in place, so the process CommandContext
	// kills on cancellation is the command itself.
	command.WaitDelay = 5 * time.Second
	err := command.Run()
	if err != nil {
		return output.Bytes(), fmt.Errorf("in netns %s: %s: %w: %s", netns, strings.Join(argv, " "), err,
			bytes.TrimSpace(output.Bytes()))
	}
	return output.Bytes(), nil
}

// setSysctls writes sysctls inside netns. /proc/sys/net is per network
// namespace, so this never changes the host's settings.
func setSysctls(ctx context.Context, netns string, settings ...string) error {
	_, err := execInNetns(ctx, netns, nil, append([]string{"sysctl", "-q", "-w"}, settings...)...)
	return err
}

// netnsDialer returns a DialContext function whose sockets live in netns.
// It lets the test process (in the host namespace) talk to the apiserver or
// a proxy's metrics endpoint without any address in the host namespace.
func netnsDialer(netns string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := SocketIn(netns, func() (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, address)
		})
		if err != nil {
			return nil, fmt.Errorf("dial %s in netns %s: %w", address, netns, err)
		}
		return conn, nil
	}
}

// SocketIn runs open, which creates a socket, with the calling OS thread switched
// into netns, and switches back. A socket keeps the namespace it was created in, so
// the test process can use it from the host namespace without any address there.
// The switch happens on a dedicated goroutine: if switching back fails, its thread
// stays locked and dies with it instead of running other code in the wrong
// namespace.
func SocketIn[T io.Closer](netns string, open func() (T, error)) (T, error) {
	var zero T
	target, err := os.Open(filepath.Join(netnsDir, netns))
	if err != nil {
		return zero, err
	}
	defer target.Close()
	type result struct {
		sock T
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		original, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer original.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns %s: %w", netns, err)}
			return
		}
		sock, openErr := open()
		if err := unix.Setns(int(original.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			if openErr == nil {
				sock.Close()
			}
			done <- result{err: fmt.Errorf("setns back from %s: %w", netns, err)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{sock, openErr}
	}()
	r := <-done
	return r.sock, r.err
}

// netnsPids lists the processes inside netns.
func netnsPids(ctx context.Context, netns string) ([]int, error) {
	output, err := exec.CommandContext(ctx, "ip", "netns", "pids", netns).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", netns, err)
	}
	var pids []int
	for _, field := range strings.Fields(string(output)) {
		if pid, err := strconv.Atoi(field); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsProcesses SIGKILLs every process in netns and waits (bounded)
// until none is left, so that deleting the namespace really frees it.
func killNetnsProcesses(ctx context.Context, netns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := netnsPids(ctx, netns)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in netns %s after SIGKILL and 10s", pids, netns)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deleteNetns kills what runs in netns and deletes it. A namespace already
// gone is not an error.
func deleteNetns(ctx context.Context, netns string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, netns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	if err := killNetnsProcesses(ctx, netns); err != nil {
		errs = append(errs, err)
	}
	if err := ipCommand(ctx, "netns", "delete", netns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// listNetns returns the names of the namespaces with the testbed prefix.
func listNetns() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", netnsDir, err)
	}
	var names []string
	for _, entry := range entries {
		if ours(entry.Name()) {
			names = append(names, entry.Name())
		}
	}
	return names, nil
}

// ours reports whether a namespace or directory name is a testbed cluster's,
// "sy-<6 hex>" or "sy-<6 hex>-rest". Other tests use the prefix too (test/restore's
// "sy-rst-..."), and a concurrent package's namespaces must not be taken for
// leftovers: that killed test/restore's iptables in one CI run.
func ours(name string) bool {
	id := ownerID(name)
	if !strings.HasPrefix(name, Prefix) || len(id) != 6 {
		return false
	}
	for _, r := range id {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// ownerID extracts the cluster id from a namespace or directory name,
// "sy-<id>-rest" or "sy-<id>".
func ownerID(name string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(name, Prefix), "-")
	return id
}

// clusterLock marks a Cluster as alive for as long as this process holds an
// exclusive flock on lockDir/<id>.lock. The kernel drops the lock when the
// process dies, however it dies, so a later Cleanup can tell the leftovers
// of a killed run from the namespaces of a run still going (another test
// binary of the same `go test ./...`).
func clusterLock(id string) (*os.File, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", lockDir, err)
	}
	file, err := os.OpenFile(filepath.Join(lockDir, id+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating cluster lock: %w", err)
	}
	if err := unix.Flock(int(file.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		file.Close()
		return nil, fmt.Errorf("locking cluster %s: %w", id, err)
	}
	return file, nil
}

// alive reports whether some process holds the lock of cluster id.
func alive(id string) bool {
	file, err := os.OpenFile(filepath.Join(lockDir, id+".lock"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer file.Close()
	if err := unix.Flock(int(file.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = unix.Flock(int(file.Fd()), unix.LOCK_UN)
	return false
}

// Cleanup removes what killed runs left behind: every network namespace
// named with Prefix whose cluster is not alive (its processes are
// SIGKILLed first, which also frees their veths), its temporary directory
// and its lock file. Live clusters, in this process or another, are left
// alone. StartControlPlane calls it; hack/sandbox.sh and tests may too.
// It returns the names it removed.
func Cleanup() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var removed []string
	var errs []error
	names, err := listNetns()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if alive(ownerID(name)) {
			continue
		}
		if err := deleteNetns(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	// Only directories named like ours (sy-<6 hex>-...): other code may use
	// the prefix for temporary directories of its own.
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), Prefix+"[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-*"))
	for _, dir := range dirs {
		if alive(ownerID(filepath.Base(dir))) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	locks, _ := filepath.Glob(filepath.Join(lockDir, "*.lock"))
	for _, lock := range locks {
		if id := strings.TrimSuffix(filepath.Base(lock), ".lock"); !alive(id) {
			_ = os.Remove(lock)
		}
	}
	return removed, errors.Join(errs...)
}

// waitPortsForwarding waits until the given ports of the bridge in netns
// forward frames. A new port stays "disabled" until the kernel's link-watch
// work has seen its carrier come up, which can take up to a second after
// both veth ends are up; frames arriving before are dropped, so without this
// wait the first packet of a test is lost and a TCP connect takes a full
// SYN retransmission (1 s) or times out.
func waitPortsForwarding(ctx context.Context, netns string, ports ...string) error {
	what := fmt.Sprintf("bridge ports %s in %s to forward", strings.Join(ports, ", "), netns)
	return poll(ctx, 10*time.Second, what, func(ctx context.Context) error {
		output, err := exec.CommandContext(ctx, "ip", "-n", netns, "-j", "-d", "link", "show", "master", bridgeName).Output()
		if err != nil {
			return fmt.Errorf("ip link show master %s: %w", bridgeName, err)
		}
		var links []struct {
			Name     string `json:"ifname"`
			LinkInfo struct {
				Port struct {
					State string `json:"state"`
				} `json:"info_slave_data"`
			} `json:"linkinfo"`
		}
		if err := json.Unmarshal(output, &links); err != nil {
			return fmt.Errorf("decoding ip -j link: %w", err)
		}
		states := map[string]string{}
		for _, link := range links {
			states[link.Name] = link.LinkInfo.Port.State
		}
		for _, port := range ports {
			if states[port] != "forwarding" {
				return fmt.Errorf("port states %v", states)
			}
		}
		return nil
	})
}
