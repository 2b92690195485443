//go:build bench

package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// dryRunHeader is the first line `switchyard dry-run` prints per family.
var dryRunHeader = regexp.MustCompile(`# switchyard dry-run: node \S+, IPv4, (\d+) service ports, (\d+) endpoints`)

// TestDryRunClusterBench loads DRYRUN_CLUSTER_SCALE (default 10000x10) Services and
// EndpointSlices into the testbed's real kube-apiserver, then times, in turn and
// DRYRUN_ROUNDS times, `kubectl get services,endpointslices -A -o json` and
// `switchyard dry-run --kubeconfig` against it, both run in the control plane's
// namespace as a user would run them, and reports the medians and their ratio (the
// target: dry-run within 2x of kubectl). With SWITCHYARD_BASE_BIN, that binary (the
// script builds main's) is timed in the same rounds too. hack/bench-dryrun-cluster.sh
// runs it as root.
func TestDryRunClusterBench(t *testing.T) {
	testbed.Require(t)
	scale, err := ParseScale(env("DRYRUN_CLUSTER_SCALE", "10000x10"))
	if err != nil {
		t.Fatal(err)
	}
	rounds, err := strconv.Atoi(env("DRYRUN_ROUNDS", "3"))
	if err != nil || rounds < 1 {
		t.Fatalf("DRYRUN_ROUNDS: %v", err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	binary := env("SWITCHYARD_BIN", filepath.Join(root, "bin", "switchyard"))
	if _, err := os.Stat(binary); err != nil {
		t.Fatalf("switchyard binary: %v (run hack/bench-dryrun-cluster.sh, which builds it)", err)
	}

	ctx := t.Context()
	cluster := testbed.StartControlPlane(t)
	config, err := cluster.RESTConfig(cluster.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	config.QPS, config.Burst = 5000, 10000
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	loader := &Loader{Client: client, Workers: 48}
	if err := loader.EnsureNamespace(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := loader.Load(ctx, 0, scale.Services, scale.Endpoints); err != nil {
		t.Fatalf("loading %s: %v", scale, err)
	}
	t.Logf("loaded %s (%d Services, %d EndpointSlices) in %.1fs (load average %s)", scale, scale.Services, scale.Services, time.Since(start).Seconds(), LoadAverage())

	inNetns := func(argv ...string) *exec.Cmd {
		return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", cluster.Netns}, argv...)...)
	}
	kubectl := func() *exec.Cmd {
		return inNetns(cluster.Tool("kubectl"), "--kubeconfig", cluster.AdminKubeconfig,
			"get", "services,endpointslices", "-A", "-o", "json")
	}
	dryRunWith := func(binary string) *exec.Cmd {
		return inNetns(binary, "dry-run", "--kubeconfig", cluster.AdminKubeconfig,
			"--node", "bench-node", "--node-ip", "192.168.0.10", "--ip-family", "ipv4", "--cluster-cidr", "10.244.0.0/16")
	}
	dryRun := func() *exec.Cmd { return dryRunWith(binary) }

	// The dry run must have read everything: every benchmark Service (and the
	// apiserver's own) with all its endpoints.
	out, err := dryRun().Output()
	if err != nil {
		t.Fatalf("dry-run --kubeconfig: %v", err)
	}
	m := dryRunHeader.FindSubmatch(out)
	if m == nil {
		t.Fatalf("dry-run printed no header:\n%.2000s", out)
	}
	ports, _ := strconv.Atoi(string(m[1]))
	endpoints, _ := strconv.Atoi(string(m[2]))
	if ports < scale.Services || endpoints < scale.Services*scale.Endpoints {
		t.Fatalf("dry-run rendered %d service ports and %d endpoints, want at least %d and %d", ports, endpoints, scale.Services, scale.Services*scale.Endpoints)
	}
	t.Logf("dry-run --kubeconfig rendered %d service ports, %d endpoints", ports, endpoints)

	type contender struct {
		samples *[]ProcessSample
		cmd     func() *exec.Cmd
	}
	var kubectlSamples, dryRunSamples, baseSamples []ProcessSample
	contenders := []contender{{&kubectlSamples, kubectl}, {&dryRunSamples, dryRun}}
	base := os.Getenv("SWITCHYARD_BASE_BIN")
	if base != "" {
		contenders = append(contenders, contender{&baseSamples, func() *exec.Cmd { return dryRunWith(base) }})
	}
	for range rounds {
		for _, c := range contenders {
			s, err := MeasureProcess(c.cmd())
			if err != nil {
				t.Fatal(err)
			}
			*c.samples = append(*c.samples, s)
		}
	}
	k, d := MedianSample(kubectlSamples), MedianSample(dryRunSamples)
	t.Logf("%s, median of %d, load average %s", scale, rounds, LoadAverage())
	t.Logf("kubectl get services,endpointslices -A -o json: %v", k)
	t.Logf("switchyard dry-run --kubeconfig:                %v", d)
	t.Logf("dry-run/kubectl: wall %.2f (target <= 2), CPU %.2f, peak RSS %.2f",
		d.Wall.Seconds()/k.Wall.Seconds(), d.CPU.Seconds()/k.CPU.Seconds(), float64(d.MaxRSS)/float64(k.MaxRSS))
	if base != "" {
		b := MedianSample(baseSamples)
		t.Logf("base binary's dry-run --kubeconfig:           %v", b)
		t.Logf("dry-run/base: wall %.2f, CPU %.2f, peak RSS %.2f; output identical: %v",
			d.Wall.Seconds()/b.Wall.Seconds(), d.CPU.Seconds()/b.CPU.Seconds(), float64(d.MaxRSS)/float64(b.MaxRSS), b.OutputSHA256 == d.OutputSHA256)
	}
}
