package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestReadEachSeesWhatReadReturns checks that ReadEach hands visit exactly the objects
// Read returns, in input order, each with the Source that Read's SourceOf gives, and
// the same problems: dry-run prints the same whichever of the two it reads with.
// mutation-checked: visiting before the duplicate check in add fails "duplicates" and
// "directory"; visiting before the namespace is defaulted fails "list",
// "multi-document", "duplicates", "bad input" and "directory"; not visiting Nodes
// fails "list", "node", "directory" and "dump".
func TestReadEachSeesWhatReadReturns(t *testing.T) {
	dir := t.TempDir()
	var dump bytes.Buffer
	writeDump(&dump, 50, 3)
	dumpPath := filepath.Join(dir, "dump.json")
	if err := os.WriteFile(dumpPath, dump.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		paths []string
	}{
		{"list", []string{"testdata/list.yaml"}},
		{"multi-document", []string{"testdata/multi.yaml"}},
		{"node", []string{"testdata/node.json"}},
		{"duplicates", []string{"testdata/dup", "testdata/services.json", "testdata/services.json"}},
		{"bad input", []string{"testdata/bad-syntax.yaml", "testdata/invalid.yaml", "testdata/wrong-version.yaml", "testdata/unknown-field.yaml", "testdata/duplicate-key.yaml", "testdata/missing.yaml"}},
		{"directory", []string{"testdata"}},
		{"dump", []string{dumpPath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErrs := read(tc.paths, nil)
			var wantVisits []visitRecord
			for _, o := range want.Services {
				wantVisits = append(wantVisits, visitRecord{o, sourceOf(t, want, o)})
			}
			for _, o := range want.EndpointSlices {
				wantVisits = append(wantVisits, visitRecord{o, sourceOf(t, want, o)})
			}
			for _, o := range want.Nodes {
				wantVisits = append(wantVisits, visitRecord{o, sourceOf(t, want, o)})
			}
			// Read files objects by kind; compare in that order.
			byKind := map[string][]visitRecord{}
			gotErrs := readEach(tc.paths, nil, func(obj runtime.Object, src Source) {
				kind := obj.GetObjectKind().GroupVersionKind().Kind
				byKind[kind] = append(byKind[kind], visitRecord{obj, src})
			})
			var gotVisits []visitRecord
			for _, kind := range []string{"Service", "EndpointSlice", "Node"} {
				gotVisits = append(gotVisits, byKind[kind]...)
			}
			if len(wantVisits) == 0 {
				t.Fatalf("the case reads no objects; it tests nothing")
			}
			if diff := cmp.Diff(wantVisits, gotVisits); diff != "" {
				t.Errorf("visited objects differ from Read's (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(errorTexts(wantErrs), errorTexts(gotErrs)); diff != "" {
				t.Errorf("problems differ from Read's (-want +got):\n%s", diff)
			}
		})
	}
}

// visitRecord is one object and where it was read.
type visitRecord struct {
	Object runtime.Object
	Source Source
}

func sourceOf(t *testing.T, objs *Objects, obj any) Source {
	t.Helper()
	src, ok := objs.SourceOf(obj)
	if !ok {
		t.Fatalf("Read returned %v without a source", obj)
	}
	return src
}

func errorTexts(errs []error) []string {
	var texts []string
	for _, err := range errs {
		texts = append(texts, err.Error())
	}
	return texts
}

// TestPlainStringAgreesWithEncodingJSON checks readTypeAndName's shortcut against
// encoding/json, which it stands in for: where it answers, the answer is the same.
// mutation-checked: accepting backslashes fails "unicode escape"; accepting bytes
// above 0x7e fails "UTF-8" and "invalid UTF-8".
func TestPlainStringAgreesWithEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		wantPlain   bool
	}{
		{"plain", `"web-1.demo"`, true},
		{"empty", `""`, true},
		{"escaped quote", `"a\"b"`, false},
		{"unicode escape", `"caf\u00e9"`, false},
		{"UTF-8", `"café"`, false},
		{"invalid UTF-8", "\"a\xffb\"", false},
		{"number", `12`, false},
		{"null", `null`, false},
		{"object", `{"a":"b"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := plainString([]byte(tc.value))
			if ok != tc.wantPlain {
				t.Fatalf("plainString(%s) handled = %v, want %v", tc.value, ok, tc.wantPlain)
			}
			if !ok {
				return
			}
			var want string
			if err := json.Unmarshal([]byte(tc.value), &want); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("plainString(%s) = %q, encoding/json says %q", tc.value, got, want)
			}
		})
	}
}
