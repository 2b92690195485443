package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/iptables"
)

// streamDump is a 1k Services × 10 endpoints dump, one JSON List as `kubectl get -o
// json` prints it: `go run ./test/bench/gendump -scale 1000x10`, gzipped.
const streamDump = "testdata/stream/dump-1000x10.json.gz"

// TestDryRunDumpMatchesMain pins dry-run's output over a generated cluster dump, in
// each mode, to the SHA-256 of what main printed (at 2f4b4d2, before dry-run fed its
// tracker while reading, and again at ddbb12a) for `switchyard dry-run -f dump-1000x10.json --cluster-cidr
// 10.244.0.0/16 --mode MODE`: reading faster must not change one byte. The full
// outputs are 4.8 MB (iptables), 0.6 MB (ipvs) and 0.7 MB (nftables), too big to keep.
func TestDryRunDumpMatchesMain(t *testing.T) {
	dump := gunzipToTemp(t, streamDump)
	for _, tc := range []struct {
		mode, wantSHA256 string
		wantBytes        int
	}{
		{"iptables", "4bb1cac16b8e1c973a77d97d823ff79b5eb76f35322265dbed492644c02d7d57", 4768856},
		{"ipvs", "da0e4f5431330af47cb8107bdbec82f0d8dd960c8a9fb16f5b47568e5da3ee0e", 628155},
		{"nftables", "6294fa0f098dc7facb42e05a83adba37de110a2f8a85f79b5fa891b56707e7b0", 711067},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"dry-run", "-f", dump, "--cluster-cidr", "10.244.0.0/16", "--mode", tc.mode}
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("the dump should read cleanly, stderr:\n%s", stderr.String())
			}
			sum := sha256.Sum256(stdout.Bytes())
			if got := hex.EncodeToString(sum[:]); got != tc.wantSHA256 || stdout.Len() != tc.wantBytes {
				t.Errorf("output is %d bytes with SHA-256 %s, want %d bytes with %s (main's)", stdout.Len(), got, tc.wantBytes, tc.wantSHA256)
			}
		})
	}
}

// TestDryRunStreamedMatchesHeld checks that feeding the tracker while reading
// (streamRenderInput, what dry-run does) renders and reports exactly what reading
// everything first did (loadRenderInput, what explain still does): the same stderr,
// line for line and in order, the same node and the same rules.
// mutation-checked: dropping SetNodeName from streamRenderInput fails "interleaved"
// (the address listed on two nodes loses its local copy; TestDryRunDumpMatchesMain,
// with no such address, passes); writing the slices' problems before the Services'
// fails "interleaved", "bad input" and "named node"; writing the model's problems
// before the read problems fails the same three.
func TestDryRunStreamedMatchesHeld(t *testing.T) {
	dump := gunzipToTemp(t, streamDump)
	for _, tc := range []struct {
		name string
		opts dryRunOptions
	}{
		{"interleaved", dryRunOptions{files: stringList{"testdata/stream/interleaved.yaml"}}},
		{"bad input", dryRunOptions{files: stringList{"testdata/bad/"}, nodeIPs: stringList{"192.168.1.1"}}},
		{"examples, dual-stack", dryRunOptions{files: stringList{"../../manifests/examples/"}, clusterCIDRs: stringList{"10.244.0.0/16", "fd00:244::/56"}}},
		{"named node", dryRunOptions{files: stringList{"testdata/stream/interleaved.yaml"}, nodeName: "other-node", nodeIPs: stringList{"192.168.1.6"}}},
		{"dump", dryRunOptions{files: stringList{dump}, clusterCIDRs: stringList{"10.244.0.0/16"}}},
		{"unreadable", dryRunOptions{files: stringList{"testdata/bad/unparseable.yaml"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.mode, opts.ipFamily, opts.detectLocalMode, opts.masqueradeBit = "iptables", "auto", "ClusterCIDR", 14
			var heldErr, streamedErr bytes.Buffer
			held, heldCode := loadRenderInput(context.Background(), &opts, &heldErr)
			streamed, streamedCode := streamRenderInput(context.Background(), &opts, &streamedErr)
			if heldCode != streamedCode {
				t.Errorf("exit code %d, want %d", streamedCode, heldCode)
			}
			if diff := cmp.Diff(heldErr.String(), streamedErr.String()); diff != "" {
				t.Errorf("stderr differs (-held +streamed):\n%s", diff)
			}
			if held == nil || streamed == nil {
				if held != nil || streamed != nil {
					t.Fatalf("held %v, streamed %v: want both or neither", held, streamed)
				}
				return
			}
			if held.facts.Name != streamed.facts.Name {
				t.Errorf("node %q, want %q", streamed.facts.Name, held.facts.Name)
			}
			if diff := cmp.Diff(renderedRules(t, held), renderedRules(t, streamed)); diff != "" {
				t.Errorf("rules differ (-held +streamed):\n%s", diff)
			}
		})
	}
}

// renderedRules renders every family of in as dry-run prints it.
func renderedRules(t *testing.T, in *renderInput) string {
	t.Helper()
	var out bytes.Buffer
	for _, cfg := range in.configs {
		plan := iptables.RenderStream(in.snap, cfg, nil)
		writeHeader(&out, cfg, in.facts, in.snap, plan.Stats)
		if _, err := plan.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
	}
	return out.String()
}

// gunzipToTemp writes the gzipped file at path, uncompressed, into the test's
// temporary directory and returns its path.
func gunzipToTemp(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "dump-1000x10.json")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkDryRunDump runs the whole dry-run, reading to printing, over the 1k × 10
// dump in each mode; `make bench` times the binary over 10k × 10. For a profile:
// go test -run '^$' -bench DryRunDump/iptables -cpuprofile cpu.out ./cmd/proxy
func BenchmarkDryRunDump(b *testing.B) {
	dump := gunzipToTemp(b, streamDump)
	for _, mode := range []string{"iptables", "ipvs", "nftables"} {
		b.Run(mode, func(b *testing.B) {
			args := []string{"dry-run", "-f", dump, "--cluster-cidr", "10.244.0.0/16", "--mode", mode}
			b.ReportAllocs()
			for b.Loop() {
				if code := run(args, io.Discard, io.Discard); code != 0 {
					b.Fatalf("exit %d", code)
				}
			}
		})
	}
}
