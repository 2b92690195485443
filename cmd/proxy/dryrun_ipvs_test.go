package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

var ipvsExamplesArgs = append(slicesClone(examplesArgs), "--mode", "ipvs")

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestDryRunIPVSGolden pins the IPVS-mode output for the bundled examples; rewrite
// with -update and review the diff.
func TestDryRunIPVSGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		extra  []string
	}{
		{"ipvs-examples.golden", nil},
		{"ipvs-examples-mh.golden", []string{"--ipvs-scheduler", "mh", "--ipvs-strict-arp", "--ip-family", "ipv4"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append(slicesClone(ipvsExamplesArgs), tc.extra...), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("the examples should render cleanly, stderr:\n%s", stderr.String())
			}
			golden := filepath.Join("testdata", tc.golden)
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
		})
	}
}

// TestDryRunIPVSRulesLoad feeds each family's companion payload to the strict in-memory
// iptables, and checks the sections a reader relies on.
func TestDryRunIPVSRulesLoad(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(ipvsExamplesArgs, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	sections := splitFamilies(stdout.String())
	if len(sections) != 2 {
		t.Fatalf("want an IPv4 and an IPv6 section, got %d", len(sections))
	}
	for i, family := range []ruleset.Family{ruleset.IPv4, ruleset.IPv6} {
		_, payload, ok := strings.Cut(sections[i], "-w 5 --noflush\n")
		if !ok {
			t.Fatalf("%s: no companion payload", family)
		}
		if err := ruleset.New(family).Apply([]byte(payload), true); err != nil {
			t.Errorf("%s payload does not load: %v", family, err)
		}
		for _, want := range []string{"# IPVS table (ipvsadm -Sn):\n-A -", "# ipsets (ipset save):\ncreate ", "# Addresses on kube-ipvs0"} {
			if !strings.Contains(sections[i], want) {
				t.Errorf("%s section lacks %q", family, want)
			}
		}
	}
}

func TestDryRunIPVSBadScheduler(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(append(slicesClone(ipvsExamplesArgs), "--ipvs-scheduler", "fastest"), &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `--ipvs-scheduler "fastest"`) {
		t.Errorf("stderr must name the bad flag: %s", stderr.String())
	}
}
