package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExplainDocs runs every `switchyard explain` example of docs/explain.md and
// compares its output and exit status with the page, so the page shows what the
// binary really prints. After a deliberate change of wording, regenerate the page's
// examples by running them (the page says how each was produced). Mutation-checked:
// changing one endpoint's 50.0% to 33.3% on the page fails it.
func TestExplainDocs(t *testing.T) {
	page, err := os.ReadFile("../../docs/explain.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := 0
	for _, block := range strings.Split(string(page), "```console\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		command, output, _ := strings.Cut(block, "\n")
		args, ok := strings.CutPrefix(command, "$ switchyard ")
		if !ok {
			continue
		}
		wantCode := 0
		if out, code, ok := strings.Cut(output, "$ echo $?\n"); ok {
			output = out
			if wantCode, err = strconv.Atoi(strings.TrimSpace(code)); err != nil {
				t.Fatalf("%s: exit status %q", command, code)
			}
		}
		argv := strings.Fields(strings.ReplaceAll(args, "manifests/examples/", "../../manifests/examples/"))
		var stdout, stderr bytes.Buffer
		code := run(argv, &stdout, &stderr)
		if code != wantCode {
			t.Errorf("%s: exit %d, the page says %d; stderr:\n%s", command, code, wantCode, stderr.String())
		}
		if diff := cmp.Diff(output, stdout.String()); diff != "" {
			t.Errorf("%s: output differs from the page (-page +binary):\n%s", command, diff)
		}
		examples++
	}
	if examples < 5 {
		t.Errorf("found %d examples in docs/explain.md, want at least 5", examples)
	}
}
