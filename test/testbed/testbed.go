package testbed

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// modulePath identifies the repository root when walking up from the
// test's working directory.
const modulePath = "github.com/switchyard-io/switchyard"

// ToolsBinEnv names the environment variable that points at a directory
// holding kube-apiserver, etcd, kubectl and kube-proxy. hack/e2e.sh sets it
// from hack/build-tools.sh; without it the testbed computes the cache path
// the same way that script does.
const ToolsBinEnv = "SWITCHYARD_TOOLS_BIN"

// toolNames are the binaries hack/build-tools.sh builds.
var toolNames = []string{"kube-apiserver", "etcd", "kubectl", "kube-proxy"}

var (
	repoRootOnce sync.Once
	repoRootDir  string
	repoRootErr  error
)

// RepoRoot returns the root of the Switchyard repository, found by walking up
// from the working directory (go test runs in the package directory) to the
// go.mod that declares the root module.
func RepoRoot() (string, error) {
	repoRootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			repoRootErr = fmt.Errorf("finding repository root: %w", err)
			return
		}
		for {
			if isRootModule(filepath.Join(dir, "go.mod")) {
				repoRootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				repoRootErr = fmt.Errorf("no go.mod declaring module %s above the working directory", modulePath)
				return
			}
			dir = parent
		}
	})
	return repoRootDir, repoRootErr
}

func isRootModule(goMod string) bool {
	file, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		if fields := strings.Fields(scanner.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}

// ToolsBinDir returns the directory holding the pinned Kubernetes binaries:
// $SWITCHYARD_TOOLS_BIN if set, else .cache/tools/<key>/bin under the
// repository root, where <key> is the first 12 hex digits of the sha256 of
// test/tools/go.sum (the same key hack/build-tools.sh uses).
func ToolsBinDir() (string, error) {
	if dir := os.Getenv(ToolsBinEnv); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	goSum, err := os.ReadFile(filepath.Join(root, "test", "tools", "go.sum"))
	if err != nil {
		return "", fmt.Errorf("computing tools cache key: %w", err)
	}
	sum := sha256.Sum256(goSum)
	return filepath.Join(root, ".cache", "tools", hex.EncodeToString(sum[:])[:12], "bin"), nil
}

// Require prepares a privileged test: it skips the test when not running as
// root (network namespaces need it), and fails it when the pinned binaries
// are missing, since a root run without them is a setup mistake rather than
// a reason to skip silently. Every test using the testbed calls it first.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testbed: needs root for network namespaces; run `sudo make e2e` (skipping)")
	}
	for _, command := range []string{"ip", "go"} {
		if _, err := exec.LookPath(command); err != nil {
			t.Fatalf("testbed: %s not found in PATH: %v (run hack/ci-deps.sh)", command, err)
		}
	}
	if _, err := toolPaths(); err != nil {
		t.Fatalf("testbed: %v: run `make tools` first", err)
	}
}

// toolPaths returns the path of every pinned binary, or an error naming the
// directory and the binaries missing from it.
func toolPaths() (map[string]string, error) {
	dir, err := ToolsBinDir()
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	var missing []string
	for _, name := range toolNames {
		path := filepath.Join(dir, name)
		if info, err := os.Stat(path); err != nil || info.Mode()&0o111 == 0 {
			missing = append(missing, name)
			continue
		}
		paths[name] = path
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("tools %s missing in %s", strings.Join(missing, ", "), dir)
	}
	return paths, nil
}

var (
	echoOnce sync.Once
	echoPath string
	echoErr  error
)

// EchoBinary returns the path of the syecho helper (test/testbed/syecho),
// building it once per process. Pods run `syecho serve`; the Dial helpers
// run `syecho dial`; people can run it by hand in the sandbox. It goes to
// .cache/testbed in the repository (git-ignored) through a rename, so test
// binaries of several packages running at once never see a half-written file.
func EchoBinary() (string, error) {
	echoOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			echoErr = err
			return
		}
		dir := filepath.Join(root, ".cache", "testbed")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			echoErr = fmt.Errorf("building syecho: %w", err)
			return
		}
		final := filepath.Join(dir, "sy-echo")
		temp := fmt.Sprintf("%s.%d.tmp", final, os.Getpid())
		build := exec.Command("go", "build", "-o", temp, "./test/testbed/syecho")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if output, err := build.CombinedOutput(); err != nil {
			echoErr = fmt.Errorf("building syecho: %w\n%s", err, output)
			return
		}
		if err := os.Rename(temp, final); err != nil {
			echoErr = fmt.Errorf("building syecho: %w", err)
			return
		}
		echoPath = final
	})
	return echoPath, echoErr
}
