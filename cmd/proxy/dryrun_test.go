package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// examplesArgs are the README's dry-run over the bundled examples.
var examplesArgs = []string{"dry-run", "-f", "../../manifests/examples/", "--cluster-cidr", "10.244.0.0/16,fd00:244::/56"}

// TestDryRunExamplesGolden pins the rules for the bundled examples. Review changes to
// the golden file as a diff; rewrite it with -update.
func TestDryRunExamplesGolden(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(examplesArgs, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("the examples should read cleanly, stderr:\n%s", stderr.String())
	}
	golden := filepath.Join("testdata", "examples.golden")
	if *update {
		if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
		t.Errorf("dry-run output differs from %s (-want +got):\n%s", golden, diff)
	}
}

// TestDryRunOutputLoads feeds each family's payload to the strict in-memory iptables,
// which rejects unknown syntax, jumps to missing chains and misplaced targets.
func TestDryRunOutputLoads(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(examplesArgs, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	sections := splitFamilies(stdout.String())
	if len(sections) != 2 {
		t.Fatalf("want an IPv4 and an IPv6 section, got %d", len(sections))
	}
	for i, family := range []ruleset.Family{ruleset.IPv4, ruleset.IPv6} {
		rs := ruleset.New(family)
		if err := rs.Apply([]byte(sections[i]), true); err != nil {
			t.Errorf("%s payload does not load: %v", family, err)
		}
	}
}

// splitFamilies splits dry-run output at each "# switchyard dry-run:" header.
func splitFamilies(out string) []string {
	var sections []string
	for _, part := range strings.Split(out, "# switchyard dry-run:") {
		if strings.TrimSpace(part) != "" {
			sections = append(sections, "#"+part)
		}
	}
	return sections
}

// TestDryRunBadInput checks that every kind of bad input is reported on stderr with
// the file and the object, and never stops the good objects from being rendered.
func TestDryRunBadInput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"dry-run", "-f", "testdata/bad/", "--node-ip", "192.168.1.1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: some objects were usable, so dry-run must succeed; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{
		`testdata/bad/unparseable.yaml`,
		`testdata/bad/mixed.yaml: document 3 (line 21): service demo/bad-ip: cluster IP "10.96.1.300"`,
		`testdata/bad/mixed.yaml: document 4 (line 28): service demo/bad-port: port "http": port 70000 out of range`,
		`10.96.1.300`,
		`service demo/bad-port`,
		`port 70000 out of range`,
		`not-an-ip`,
		`endpointslice demo/orphan-1: no kubernetes.io/service-name label`,
		`Deployment`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	for _, want := range []string{`"demo/good:http cluster IP"`, `--to-destination 10.244.1.9:8080`, `"demo/bad-port:ok has no endpoints"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q: the good objects must still be rendered", want)
		}
	}
}

func TestDryRunExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{name: "no input at all", args: []string{"dry-run"}, want: 2},
		{name: "missing file", args: []string{"dry-run", "-f", "testdata/does-not-exist.yaml"}, want: 1},
		{name: "only unparseable input", args: []string{"dry-run", "-f", "testdata/bad/unparseable.yaml"}, want: 1},
		{name: "bad flag value", args: []string{"dry-run", "-f", "../../manifests/examples", "--cluster-cidr", "10.0.0.0/33"}, want: 2},
		{name: "unsupported mode", args: []string{"dry-run", "-f", "../../manifests/examples", "--mode", "userspace"}, want: 2},
		{name: "unknown command", args: []string{"frobnicate"}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("exit %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
			if stderr.Len() == 0 {
				t.Errorf("a failure must say why on stderr")
			}
		})
	}
}

// TestDryRunFileArguments checks the spellings of dry-run's input that kubectl users
// expect: -f and --filename, repeated, split at commas, --filename=, and positional
// arguments; each gives the same output as the directory.
// mutation-checked: dropping `opts.files = append(opts.files, args...)` from
// newDryRunCommand fails "positional" and "mixed"; stringList.Set replacing instead of
// appending fails "repeated" and "equals"; not splitting at commas fails "commas" and
// "equals".
func TestDryRunFileArguments(t *testing.T) {
	dir := "../../manifests/examples/"
	var files []string
	for _, name := range []string{"api", "db", "dns", "docs", "legacy", "metrics", "node", "storefront", "web"} {
		files = append(files, dir+name+".yaml")
	}
	var want, stderr bytes.Buffer
	if code := run([]string{"dry-run", "-f", dir}, &want, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	repeated := []string{"dry-run"}
	for _, f := range files {
		repeated = append(repeated, "-f", f)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"repeated", repeated},
		{"commas", []string{"dry-run", "--filename", strings.Join(files, ",")}},
		{"equals", []string{"dry-run", "--filename=" + strings.Join(files[:4], ","), "-f=" + strings.Join(files[4:], ",")}},
		{"positional", append([]string{"dry-run"}, files...)},
		{"mixed", append([]string{"dry-run", "-f", files[0], "--mode", "iptables"}, files[1:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if diff := cmp.Diff(want.String(), stdout.String()); diff != "" {
				t.Errorf("output differs from -f %s (-want +got):\n%s", dir, diff)
			}
		})
	}
}
