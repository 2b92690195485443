package vm

// These tests boot real guests. They need root (the network test creates a network namespace),
// QEMU and the kernel from hack/vm-deps.sh. Without them the tests skip, unless CI is set: CI
// installs the dependencies first, so there a missing piece is a failure.
//
// IP plan inside the guests:
//   10.0.0.1:80          IPVS virtual server (TestIPVSInGuest)
//   10.1.0.1, 10.1.0.2   its real servers, port 8080
//   10.99.0.1/24         veth-host in the guest's root namespace (testdata/userland.sh)
//   10.99.0.2/24         veth-a in the guest's namespace "a"
//   10.0.2.15/24         the guest's eth0 on QEMU user networking; 10.0.2.2 is the host side

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// missingDependency skips the test, or fails it when CI is set: CI installs the dependencies
// with hack/vm-deps.sh first, so there a missing piece is a broken setup, not a reason to skip.
func missingDependency(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so the VM dependencies must be present (hack/vm-deps.sh): "+format, args...)
	}
	t.Skipf("skipping VM test: "+format+"; run hack/vm-deps.sh as root", args...)
}

// requireKernel returns the kernel unpacked by hack/vm-deps.sh.
func requireKernel(t *testing.T) *Kernel {
	t.Helper()
	dir, err := DefaultKernelDir()
	if err != nil {
		missingDependency(t, "%v", err)
	}
	k, err := loadKernelCached(dir)
	if err != nil {
		missingDependency(t, "%v", err)
	}
	return k
}

// requireVM checks that a guest can be booted here: root, QEMU and the kernel.
func requireVM(t *testing.T) *Kernel {
	t.Helper()
	if os.Geteuid() != 0 {
		missingDependency(t, "not root")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		missingDependency(t, "qemu-system-x86_64 not found")
	}
	return requireKernel(t)
}

// testWriter streams the guest's console into the test log, line by line.
type testWriter struct {
	t       *testing.T
	mu      sync.Mutex
	partial string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	text := w.partial + string(p)
	lines := strings.Split(text, "\n")
	w.partial = lines[len(lines)-1]
	for _, line := range lines[:len(lines)-1] {
		w.t.Log("guest: " + line)
	}
	return len(p), nil
}

func runGuest(t *testing.T, cfg Config) Result {
	t.Helper()
	if cfg.Output == nil {
		cfg.Output = &testWriter{t: t}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 90 * time.Second
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run(%q): %v", cfg.Command, err)
	}
	t.Logf("timings (%s): build %v, boot %v, command %v, total %v",
		res.Accel, res.BuildTime.Round(time.Millisecond), res.BootTime.Round(time.Millisecond),
		res.RunTime.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	return res
}

func TestExitStatus(t *testing.T) {
	k := requireVM(t)
	tests := []struct {
		name       string
		command    []string
		wantExit   int
		wantOutput string
	}{
		{
			name:       "ipvs present",
			command:    []string{"sh", "-c", "head -n 1 /proc/net/ip_vs && grep -c . /proc/modules >/dev/null"},
			wantExit:   0,
			wantOutput: "IP Virtual Server version",
		},
		{
			name:       "non-zero exit",
			command:    []string{"sh", "-c", "echo 'it'\\''s quoted'; printf 'no newline'; exit 7"},
			wantExit:   7,
			wantOutput: "it's quoted\nno newline",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runGuest(t, Config{Kernel: k, Command: tc.command})
			if res.ExitCode != tc.wantExit {
				t.Errorf("exit code = %d, want %d; output:\n%s", res.ExitCode, tc.wantExit, res.Output)
			}
			if !strings.Contains(res.Output, tc.wantOutput) {
				t.Errorf("output = %q, want it to contain %q", res.Output, tc.wantOutput)
			}
		})
	}
}

// buildGuestTests compiles this package's tests, guest-only ones included (build tag
// vmguest), into a static binary for the guest.
func buildGuestTests(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vm.test")
	start := time.Now()
	cmd := exec.Command("go", "test", "-c", "-tags", "vmguest", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the guest test binary: %v\n%s", err, out)
	}
	t.Logf("built the guest test binary in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

func TestIPVSInGuest(t *testing.T) {
	k := requireVM(t)
	bin := buildGuestTests(t)
	res := runGuest(t, Config{
		Kernel:  k,
		Files:   map[string]string{"/usr/local/bin/vm.test": bin},
		Command: []string{"vm.test", "-test.run", "^TestGuestIPVS$", "-test.v", "-test.count=1"},
	})
	if res.ExitCode != 0 {
		t.Fatalf("guest test failed with exit code %d:\n%s", res.ExitCode, res.Output)
	}
	for _, want := range []string{"--- PASS: TestGuestIPVS", "\nPASS"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("guest output lacks %q:\n%s", want, res.Output)
		}
	}
}

func TestUserland(t *testing.T) {
	k := requireVM(t)
	res := runGuest(t, Config{
		Kernel:  k,
		Files:   map[string]string{"/usr/local/bin/userland.sh": "testdata/userland.sh"},
		Command: []string{"userland.sh"},
	})
	if res.ExitCode != 0 {
		t.Fatalf("userland.sh failed with exit code %d:\n%s", res.ExitCode, res.Output)
	}
	for _, want := range []string{
		"-A INPUT -s 10.99.0.2/32",
		"ping blocked by the rule, as expected",
		"--match-set KUBE-TEST-CLUSTER-IP dst,dst",
		"-A SWITCHYARD-LEGACY -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.99.0.2:8080",
		"veth-host",
		"userland OK",
	} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestNetwork starts QEMU inside a throwaway host network namespace and fetches, from the
// guest, a page served on that namespace's loopback: the path a guest takes to reach a
// kube-apiserver of the test bed. The host's own namespace is not touched.
func TestNetwork(t *testing.T) {
	k := requireVM(t)
	nsName := fmt.Sprintf("syvm-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", nsName, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", nsName).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", nsName, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", nsName, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("bringing lo up in %s: %v: %s", nsName, err, out)
	}
	listener := listenInNetNS(t, nsName)
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s, you are %s\n", nsName, r.RemoteAddr)
	})}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { _ = server.Close() })
	port := listener.Addr().(*net.TCPAddr).Port

	res := runGuest(t, Config{
		Kernel:  k,
		Network: &NetConfig{HostNetNS: nsName},
		Command: []string{"sh", "-c", fmt.Sprintf(
			// busybox-static's wget crashes in static glibc's resolver code, even for an IP
			// literal (on the host too), so speak HTTP/1.0 through nc.
			`ip -br addr show dev eth0 && ip route && printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 10.0.2.2 %d`, port)},
	})
	if res.ExitCode != 0 {
		t.Fatalf("guest exit code %d:\n%s", res.ExitCode, res.Output)
	}
	for _, want := range []string{"10.0.2.15/24", "default via 10.0.2.2", "hello from " + nsName} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("guest output lacks %q:\n%s", want, res.Output)
		}
	}
}

// listenInNetNS opens a TCP listener on 127.0.0.1 inside the named network namespace. Only
// this goroutine's locked thread enters the namespace, and it returns before unlocking.
func listenInNetNS(t *testing.T, name string) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("current network namespace: %v", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("network namespace %s: %v", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatalf("entering %s: %v", name, err)
	}
	listener, listenErr := net.Listen("tcp", "127.0.0.1:0")
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace: keep it locked so that it dies with the
		// goroutine instead of being reused.
		runtime.LockOSThread()
		t.Fatalf("returning from %s: %v", name, err)
	}
	if listenErr != nil {
		t.Fatalf("listening in %s: %v", name, listenErr)
	}
	return listener
}

func TestTimeoutKillsGuest(t *testing.T) {
	k := requireVM(t)
	start := time.Now()
	res, err := Run(context.Background(), Config{
		Kernel:  k,
		Command: []string{"sleep", "600"},
		Timeout: 15 * time.Second,
		Output:  &testWriter{t: t},
	})
	if !errors.Is(err, ErrNoExitStatus) {
		t.Fatalf("Run error = %v, want ErrNoExitStatus", err)
	}
	if res.ExitCode != -1 {
		t.Errorf("exit code = %d, want -1", res.ExitCode)
	}
	if elapsed := time.Since(start); elapsed > 25*time.Second {
		t.Errorf("Run returned after %v, want about the 15s timeout", elapsed)
	}
	t.Logf("Run returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
