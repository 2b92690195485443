//go:build linux && !ipvsguest

package ipvs

// TestIPVSInVM runs each guest test (guest_test.go) in its own throwaway QEMU guest, so
// that one test's kernel state never leaks into another. It needs root, QEMU and the
// kernel from hack/vm-deps.sh; without them it skips, unless CI is set (then it fails).

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/test/vm"
)

// guestTests are the guest tests, each booted in its own VM.
var guestTests = []string{
	"TestGuestRoundRobin",
	"TestGuestLeastConnection",
	"TestGuestSourceHash",
	"TestGuestAffinity",
	"TestGuestNodePortExternalIPSourceRanges",
	"TestGuestNoEndpointsRefused",
	"TestGuestGracefulTermination",
	"TestGuestForeignServiceSurvives",
	"TestGuestCanaryAfterFlush",
	"TestGuestDetectLocal",
}

// slowGuestTests need more than the default two minutes in the guest under TCG:
// TestGuestDetectLocal starts six proxiers, each with a full sync of 5-13 s.
var slowGuestTests = map[string]time.Duration{"TestGuestDetectLocal": 4 * time.Minute}

// extraModules are what the guest tests need beyond vm.DefaultModules: the REJECT
// target of the companion rules.
var extraModules = []string{"ipt_REJECT", "nf_reject_ipv4"}

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so the VM dependencies must be present (hack/vm-deps.sh): "+format, args...)
	}
	t.Skipf("skipping IPVS VM tests: "+format+"; run hack/vm-deps.sh as root", args...)
}

// requireKernel checks what booting a guest needs (root, QEMU, the kernel from
// hack/vm-deps.sh) and loads the kernel; without them the test skips, or fails in CI.
func requireKernel(t *testing.T) *vm.Kernel {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "not root")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		missing(t, "qemu-system-x86_64 not found")
	}
	dir, err := vm.DefaultKernelDir()
	if err != nil {
		missing(t, "%v", err)
	}
	kernel, err := vm.LoadKernel(dir)
	if err != nil {
		missing(t, "%v", err)
	}
	return kernel
}

type logWriter struct {
	t       *testing.T
	mu      sync.Mutex
	partial string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(w.partial+string(p), "\n")
	w.partial = lines[len(lines)-1]
	if os.Getenv("SWITCHYARD_VM_VERBOSE") != "" {
		for _, l := range lines[:len(lines)-1] {
			w.t.Log(l)
		}
	}
	return len(p), nil
}

func TestIPVSInVM(t *testing.T) {
	kernel := requireKernel(t)
	start := time.Now()
	bin, err := buildGuestTests(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built the guest test binary in %v", time.Since(start).Round(time.Millisecond))

	only := os.Getenv("SWITCHYARD_IPVS_TESTS") // a regexp to pick guest tests
	for _, name := range guestTests {
		if only != "" {
			if ok, _ := regexp.MatchString(only, name); !ok {
				continue
			}
		}
		t.Run(name, func(t *testing.T) {
			timeout := 2 * time.Minute
			if d, ok := slowGuestTests[name]; ok {
				timeout = d
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
			defer cancel()
			res, err := vm.Run(ctx, vm.Config{
				Kernel:       kernel,
				ExtraModules: extraModules,
				Files:        map[string]string{"/usr/local/bin/ipvs.test": bin},
				Command:      []string{"ipvs.test", "-test.run", "^" + name + "$", "-test.v", "-test.count=1"},
				Timeout:      timeout,
				Output:       &logWriter{t: t},
			})
			if err != nil {
				t.Fatalf("running the guest: %v\nconsole:\n%s", err, res.Console)
			}
			t.Logf("boot %v, run %v, total %v (%s)", res.BootTime.Round(10*time.Millisecond),
				res.RunTime.Round(10*time.Millisecond), res.Total.Round(10*time.Millisecond), res.Accel)
			for _, line := range strings.Split(res.Output, "\n") {
				if strings.Contains(line, ".go:") || strings.HasPrefix(strings.TrimSpace(line), "---") {
					t.Log(strings.TrimSpace(line))
				}
			}
			if res.ExitCode != 0 || !strings.Contains(res.Output, "--- PASS: "+name) {
				t.Fatalf("guest test exited %d:\n%s", res.ExitCode, res.Output)
			}
		})
	}
}
