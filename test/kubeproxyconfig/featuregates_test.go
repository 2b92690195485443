package kubeproxyconfig

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/kubeproxyconfig"
)

// gateSources are the files of the pinned modules (in the Go module cache after
// hack/build-tools.sh) that declare the gates kube-proxy registers. The test takes gate
// names from them as well as from Switchyard's own gate, so that a gate missing from
// zz_generated_featuregates.go is still tried.
var gateSources = []string{
	"k8s.io/kubernetes@v1.37.2/pkg/features/kube_features.go",
	"k8s.io/apiserver@v0.37.2/pkg/features/kube_features.go",
	"k8s.io/client-go@v0.37.2/features/known_features.go",
	"k8s.io/component-base@v0.37.2/logs/api/v1/kube_features.go",
	"k8s.io/component-base@v0.37.2/metrics/features/kube_features.go",
	"k8s.io/component-base@v0.37.2/zpages/features/kube_features.go",
}

// featureDecl matches a gate's declaration, `Name featuregate.Feature = "Name"`.
var featureDecl = regexp.MustCompile(`(?m)^\s*[A-Z]\w*\s+(?:featuregate\.)?Feature\s*=\s*"(\w+)"`)

// TestFeatureGatesDifferential runs, for every gate the pinned sources declare or Switchyard
// knows (and a few unknown names) and for both values, `kube-proxy
// --feature-gates=G=V --write-config-to=F` and the same with switchyard through a
// kube-proxy link, and checks that both accept (exit 0) or both refuse. kube-proxy
// accepts a GA or deprecated gate with a warning, refuses a GA gate set against its
// lock and a gate enabled without the gates it depends on. Every gate is tried with both
// values (about 1,000 processes, run 4 at a time).
// Took 22 s on the 2 shared cores (258 names, 516 settings).
// Mutation-checked: dropping from zz_generated_featuregates.go the 71 gates that are
// GA at v1.37 (and the dependencies naming them) fails it with 77 settings that
// kube-proxy accepts and switchyard refuses (e.g. "CPUManagerPolicyOptions=true"; the
// names still come from the pinned sources); dropping LockToDefault from
// CPUManagerPolicyOptions fails "CPUManagerPolicyOptions=false"; not adding
// kubeProxyFeatureGateDependencies fails 16 settings, e.g. "AtomicFIFO=false", which
// six enabled beta gates depend on.
func TestFeatureGatesDifferential(t *testing.T) {
	kubeProxy, switchyard := tools(t)
	link := kubeProxyLink(t, switchyard)
	dir := t.TempDir()

	names := map[string]bool{"NoSuchGate": true, "nosuchgate": true, "cpuManagerPolicyOptions": true}
	gate, err := kubeproxyconfig.NewFeatureGate()
	if err != nil {
		t.Fatal(err)
	}
	for name := range gate.GetAllVersioned() {
		names[string(name)] = true
	}
	modCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	fromSource := 0
	for _, file := range gateSources {
		src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(modCache)), file))
		if err != nil {
			t.Fatalf("the pinned sources are needed for the gate names (hack/build-tools.sh): %v", err)
		}
		for _, m := range featureDecl.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
			fromSource++
		}
	}
	if fromSource < 200 {
		t.Fatalf("found only %d gate declarations in the pinned sources", fromSource)
	}

	type result struct {
		arg          string
		kpOK, syOK   bool
		kpOut, syOut string
	}
	var args []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for name := range names {
			if !yield(name) {
				return
			}
		}
	}) {
		args = append(args, name+"=true", name+"=false")
	}
	results := make([]result, len(args))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, arg := range args {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out := filepath.Join(dir, fmt.Sprintf("%d", i))
			r := result{arg: arg}
			r.kpOK, r.kpOut = accepts(t, kubeProxy, "--feature-gates="+arg, "--write-config-to="+out+".kp.yaml")
			r.syOK, r.syOut = accepts(t, link, "--feature-gates="+arg, "--write-config-to="+out+".sy.yaml")
			results[i] = r
		}()
	}
	wg.Wait()
	accepted, refused := 0, 0
	for _, r := range results {
		if r.kpOK != r.syOK {
			t.Errorf("--feature-gates=%s: kube-proxy accepts %v, switchyard accepts %v\nkube-proxy: %s\nswitchyard: %s", r.arg, r.kpOK, r.syOK, r.kpOut, r.syOut)
		}
		if r.kpOK {
			accepted++
		} else {
			refused++
		}
	}
	t.Logf("%d gates, %d settings: kube-proxy accepted %d, refused %d", len(names), len(args), accepted, refused)
}

// TestFeatureGatesConfigFileDifferential does the same for the featureGates map of a
// --config file, for a gate of each kind.
// Mutation-checked: dropping the GA gates from zz_generated_featuregates.go fails
// "GA at its lock"; dropping CPUManagerPolicyOptions' lock fails "GA against its lock";
// not adding the dependencies fails "beta that others need".
func TestFeatureGatesConfigFileDifferential(t *testing.T) {
	kubeProxy, switchyard := tools(t)
	link := kubeProxyLink(t, switchyard)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		gates string
		want  bool
	}{
		{"beta", "APIResponseCompression: false", true},
		{"beta that others need", "AtomicFIFO: false", false},
		{"others need it, given off", "AtomicFIFO: false\n  NodeControllerLeaseCircuitBreaker: false\n  StaleControllerConsistencyDaemonSet: false\n  StaleControllerConsistencyHPA: false\n  StaleControllerConsistencyJob: false\n  StaleControllerConsistencyReplicaSet: false\n  StaleControllerConsistencyStatefulSet: false", true},
		{"alpha", "CRIListStreaming: true", true},
		{"GA at its lock", "CPUManagerPolicyOptions: true", true},
		{"GA against its lock", "CPUManagerPolicyOptions: false", false},
		{"deprecated", "AllowDNSOnlyNodeCSR: true", true},
		{"logging", "ContextualLogging: false", true},
		{"locked dependency", "DRAAdminAccess: true\n  DynamicResourceAllocation: false", false},
		{"unknown", "NoSuchGate: true", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".conf")
			if err := os.WriteFile(file, []byte("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nfeatureGates:\n  "+tc.gates+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			kpOK, kpOut := accepts(t, kubeProxy, "--config="+file, "--write-config-to="+file+".kp.yaml")
			syOK, syOut := accepts(t, link, "--config="+file, "--write-config-to="+file+".sy.yaml")
			if kpOK != tc.want || syOK != tc.want {
				t.Errorf("featureGates %q: kube-proxy accepts %v, switchyard %v, want %v\nkube-proxy: %s\nswitchyard: %s", tc.gates, kpOK, syOK, tc.want, kpOut, syOut)
			}
		})
	}
}

// kubeProxyLink returns a link named kube-proxy to switchyard, as the image ships it.
func kubeProxyLink(t *testing.T, switchyard string) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), "kube-proxy")
	if err := os.Symlink(switchyard, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// accepts runs a command and says whether it exited 0; any failure other than a
// non-zero exit fails the test.
func accepts(t *testing.T, argv0 string, args ...string) (bool, string) {
	output, err := exec.Command(argv0, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, string(output)
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return false, string(output)
	default:
		t.Errorf("%s %s: %v", filepath.Base(argv0), strings.Join(args, " "), err)
		return false, string(output)
	}
}
