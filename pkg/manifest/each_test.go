package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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
			compareReadEach(t, tc.paths, true)
		})
	}
}

// TestStreamedListAsInMemory checks that a List read in two streaming passes
// (streamFile, which ReadEach uses for big files) gives exactly what reading it from
// memory gives, and that everything else, valid or not, falls back to reading from
// memory with the same result. Every file here is streamed whatever its size.
// mutation-checked: putting anything but [] for the items in the skeleton fails
// every case that streams; not checking the elements with json.Valid fails "bad
// number in an item" and "bad escape in an item"; accepting what follows the List
// fails "two values" and "trailing garbage"; not counting the lines before the List
// fails "leading lines"; handing the parallel decoders the streaming buffer without
// copying it (transient false) fails "big dump"; not skipping the byte after a
// backslash in stringEnd fails "escapes in strings".
func TestStreamedListAsInMemory(t *testing.T) {
	defer func(minBytes int64, bufferBytes int) {
		streamMinBytes, streamBufferBytes = minBytes, bufferBytes
	}(streamMinBytes, streamBufferBytes)
	// Every file is streamed, through a buffer that every item outgrows.
	streamMinBytes, streamBufferBytes = 0, 16
	svc := func(name string) string {
		return `{"apiVersion":"v1","kind":"Service","metadata":{"name":"` + name + `","namespace":"ns"},"spec":{"clusterIP":"10.96.0.1","ports":[{"port":80}]}}`
	}
	list := func(items ...string) string {
		return `{"kind":"List","apiVersion":"v1","items":[` + strings.Join(items, ",") + `]}`
	}
	var big bytes.Buffer
	writeDump(&big, 300, 2)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		streams    bool
	}{
		{"kind after items", `{"apiVersion":"v1","items":[` + svc("a") + `,` + svc("b") + `],"kind":"List","metadata":{"resourceVersion":""}}`, true},
		{"kind before items", list(svc("a")), true},
		{"leading lines", "\n\n  \r\n\t" + list(svc("a"), `"x"`, `{"kind":"Node"}`) + "\n\n", true},
		{"white space everywhere", " { \"kind\" : \"List\" ,\n \"apiVersion\":\"v1\", \"items\" : [ \n" + svc("a") + " ,\n " + svc("a") + " \n ] \n } \n", true},
		{"escapes in strings", list(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"e","namespace":"ns","annotations":{"a":"x\\\\","b":"\"]}\\\"{[","c":"caf\u00e9"}},"spec":{"clusterIP":"10.96.0.3","ports":[{"port":80}]}}`, svc("f")), true},
		{"empty items", `{"kind":"List","apiVersion":"v1","items":[ ]}`, true},
		{"typed list", `{"kind":"ServiceList","apiVersion":"v1","items":[{"metadata":{"name":"a"},"spec":{"clusterIP":"10.96.0.2","ports":[{"port":80}]}}]}`, true},
		{"list of another kind", `{"kind":"PodList","apiVersion":"v1","items":[` + svc("a") + `]}`, false},
		{"nested list", list(`{"kind":"List","apiVersion":"v1","items":[]}`, svc("a")), true},
		{"no kind", `{"apiVersion":"v1","items":[` + svc("a") + `]}`, false},
		{"bad metadata", `{"kind":"List","apiVersion":"v1","metadata":{"name":7},"items":[` + svc("a") + `]}`, false},
		{"items not an array", `{"kind":"List","apiVersion":"v1","items":{"a":1}}`, false},
		{"items null", `{"kind":"List","apiVersion":"v1","items":null}`, false},
		{"Items", `{"kind":"List","apiVersion":"v1","Items":[` + svc("a") + `]}`, false},
		{"items twice", `{"kind":"List","apiVersion":"v1","items":[` + svc("a") + `],"items":[` + svc("b") + `]}`, false},
		{"duplicate key", `{"kind":"List","kind":"List","apiVersion":"v1","items":[` + svc("a") + `]}`, false},
		{"bad number in an item", list(svc("a"), `{"kind":"Service","apiVersion":"v1","metadata":{"name":"b"},"spec":{"x":1.}}`), false},
		{"bad escape in an item", list(svc("a"), `"\q"`), false},
		{"bad value after items", `{"kind":"List","apiVersion":"v1","items":[` + svc("a") + `],"metadata":{"a":tru}}`, false},
		{"trailing comma", list(svc("a"), ""), false},
		{"unterminated", `{"kind":"List","apiVersion":"v1","items":[` + svc("a"), false},
		{"two values", list(svc("a")) + " " + list(svc("b")), false},
		{"trailing garbage", list(svc("a")) + " x", false},
		{"a Service", svc("a"), false},
		{"YAML", "apiVersion: v1\nkind: List\nitems:\n- " + svc("a") + "\n", false},
		{"byte order mark", "\xef\xbb\xbf" + list(svc("a")), false},
		{"empty file", "", false},
		{"big dump", big.String(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			r := &reader{objects: &Objects{}, seen: map[string]Source{}, visit: func(runtime.Object, Source) {}}
			if streamed := r.streamFile(path); streamed != tc.streams {
				t.Errorf("streamed = %v, want %v", streamed, tc.streams)
			}
			compareReadEach(t, []string{path}, false)
		})
	}
}

// compareReadEach checks that ReadEach over paths visits what Read returns.
func compareReadEach(t *testing.T, paths []string, wantObjects bool) {
	t.Helper()
	want, wantErrs := read(paths, nil)
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
	gotErrs := readEach(paths, nil, func(obj runtime.Object, src Source) {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		byKind[kind] = append(byKind[kind], visitRecord{obj, src})
	})
	var gotVisits []visitRecord
	for _, kind := range []string{"Service", "EndpointSlice", "Node"} {
		gotVisits = append(gotVisits, byKind[kind]...)
	}
	if wantObjects && len(wantVisits) == 0 {
		t.Fatalf("the case reads no objects; it tests nothing")
	}
	if diff := cmp.Diff(wantVisits, gotVisits); diff != "" {
		t.Errorf("visited objects differ from Read's (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(errorTexts(wantErrs), errorTexts(gotErrs)); diff != "" {
		t.Errorf("problems differ from Read's (-want +got):\n%s", diff)
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
