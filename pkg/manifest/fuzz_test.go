package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Decode, the entry point every file and stdin go
// through. Decode must never panic, must report every problem as an *Error or a *Notice,
// and must return only objects that have a name (and, when namespaced, a namespace).
func FuzzRead(f *testing.F) {
	// Seed with every testdata manifest, plus inputs that stress the splitter and lists.
	paths, _ := filepath.Glob("testdata/*.*")
	more, _ := filepath.Glob("testdata/*/*.*")
	for _, p := range append(paths, more...) {
		if info, err := os.Stat(p); err != nil || info.IsDir() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{
		"",
		"---",
		"--- ---",
		"---\n---\n",
		"--- {apiVersion: v1, kind: Node, metadata: {name: n}}",
		`{"apiVersion":"v1","kind":"List","items":[null,{},[],{"kind":"NodeList","apiVersion":"v1","items":[{}]}]}`,
		`{"apiVersion":"v1","kind":"ServiceList","items":[{"metadata":{"name":"a"}},{"kind":"Node","metadata":{"name":"b"}}]}`,
		"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 99999999999}]}\n",
		"a: &a [*a]\n",
		"apiVersion: v1\nkind: Node\nmetadata: {name: a}\n...\n---\n...\nb: 1\n",
		`{"apiVersion":"v1","kind":"Node","metadata":{"name":"a"}} {"kind":"Node"} [1] {`,
		"\xff\xfe\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, errs := Decode("fuzz.yaml", data)
		for _, err := range errs {
			var e *Error
			var n *Notice
			if !errors.As(err, &e) && !errors.As(err, &n) {
				t.Errorf("problem %v is neither an *Error nor a *Notice", err)
			}
			_ = err.Error()
		}
		for _, s := range objs.Services {
			if s.Name == "" || s.Namespace == "" {
				t.Errorf("service without name or namespace: %q/%q", s.Namespace, s.Name)
			}
		}
		for _, s := range objs.EndpointSlices {
			if s.Name == "" || s.Namespace == "" {
				t.Errorf("endpointslice without name or namespace: %q/%q", s.Namespace, s.Name)
			}
		}
		for _, n := range objs.Nodes {
			if n.Name == "" || n.Namespace != "" {
				t.Errorf("node with bad name or namespace: %q/%q", n.Namespace, n.Name)
			}
		}
	})
}
