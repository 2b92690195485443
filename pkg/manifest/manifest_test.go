package manifest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// IP plan of the testdata manifests: service CIDR 10.96.0.0/16 (10.96.0.x single
// services, 10.96.1.x the ServiceList, 10.96.2.x the directory walk, 10.96.3.x the
// duplicates), pod CIDR 10.244.0.0/16, node addresses 192.168.0.0/24.

// summarize lists the objects as "Kind namespace/name", in the order Read returns them.
func summarize(objs *Objects) []string {
	var out []string
	for _, s := range objs.Services {
		out = append(out, "Service "+s.Namespace+"/"+s.Name)
	}
	for _, s := range objs.EndpointSlices {
		out = append(out, "EndpointSlice "+s.Namespace+"/"+s.Name)
	}
	for _, n := range objs.Nodes {
		out = append(out, "Node "+n.Name)
	}
	return out
}

// problems renders errors as "error: ..." or "notice: ...", as dry-run prints them.
func problems(errs []error) []string {
	var out []string
	for _, err := range errs {
		if IsNotice(err) {
			out = append(out, "notice: "+err.Error())
		} else {
			out = append(out, "error: "+err.Error())
		}
	}
	return out
}

// matchProblems compares problems with wants, where a want ending in "..." matches any
// message it prefixes: the tail of a message from the YAML or JSON library is theirs.
func matchProblems(t *testing.T, got, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		if prefix, found := strings.CutSuffix(want[i], "..."); found {
			ok = strings.HasPrefix(got[i], prefix)
		} else {
			ok = got[i] == want[i]
		}
	}
	if !ok {
		t.Errorf("problems:\n  got  %q\n  want %q", got, want)
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name         string
		paths        []string
		wantObjects  []string
		wantProblems []string
	}{
		{
			name:        "multi-document YAML with empty documents and kinds not used",
			paths:       []string{"testdata/multi.yaml"},
			wantObjects: []string{"Service default/web", "EndpointSlice default/web-abc12", "EndpointSlice shop/orphan"},
			wantProblems: []string{
				"notice: testdata/multi.yaml: document 5 (line 31): Deployment shop/web: skipped: kind Deployment is not used by switchyard",
			},
		},
		{
			name:        "v1 List",
			paths:       []string{"testdata/list.yaml"},
			wantObjects: []string{"Service data/db", "Node node-a"},
			wantProblems: []string{
				"notice: testdata/list.yaml: document 1 (line 1), item 2: ConfigMap data/settings: skipped: kind ConfigMap is not used by switchyard",
				"error: testdata/list.yaml: document 1 (line 1), item 3: object nameless-kind: no kind",
			},
		},
		{
			name:        "typed list in JSON whose items have no kind",
			paths:       []string{"testdata/services.json"},
			wantObjects: []string{"Service ns1/a", "Service ns1/b"},
		},
		{
			name:        "JSON object",
			paths:       []string{"testdata/node.json"},
			wantObjects: []string{"Node node-b"},
		},
		{
			name:        "unparseable document does not stop the next",
			paths:       []string{"testdata/bad-syntax.yaml"},
			wantObjects: []string{"Service default/before", "Service default/after"},
			wantProblems: []string{
				"error: testdata/bad-syntax.yaml: document 2 (line 8): not valid YAML or JSON: yaml: line 5: ...",
			},
		},
		{
			name:        "unknown field keeps the object and says so",
			paths:       []string{"testdata/unknown-field.yaml"},
			wantObjects: []string{"Service shop/typo"},
			wantProblems: []string{
				`error: testdata/unknown-field.yaml: document 1 (line 1): Service shop/typo: strict decoding error: unknown field "spec.externalTrafficPolcy" (the unknown fields are ignored)`,
			},
		},
		{
			name:  "duplicate key",
			paths: []string{"testdata/duplicate-key.yaml"},
			wantProblems: []string{
				"error: testdata/duplicate-key.yaml: document 1 (line 1): not valid YAML or JSON: ...",
			},
		},
		{
			name:  "unsupported apiVersion of a used kind",
			paths: []string{"testdata/wrong-version.yaml"},
			wantProblems: []string{
				"error: testdata/wrong-version.yaml: document 1 (line 1): EndpointSlice shop/old: apiVersion discovery.k8s.io/v1beta1 is not supported for EndpointSlice; use discovery.k8s.io/v1",
			},
		},
		{
			name:  "invalid documents each reported",
			paths: []string{"testdata/invalid.yaml"},
			wantProblems: []string{
				"error: testdata/invalid.yaml: document 1 (line 1): Service: no metadata.name",
				"error: testdata/invalid.yaml: document 2 (line 8): Service no-version: no apiVersion",
				"error: testdata/invalid.yaml: document 3 (line 12): object no-kind: no kind",
				"error: testdata/invalid.yaml: document 4 (line 16): not an object: a Kubernetes manifest document must be a mapping with apiVersion and kind",
				"error: testdata/invalid.yaml: document 5 (line 18): not an object: a Kubernetes manifest document must be a mapping with apiVersion and kind",
				"error: testdata/invalid.yaml: document 6 (line 21): Service shop/wrong-type: decoding: ...",
			},
		},
		{
			name:        "directory walked recursively in lexical order, other files and dot entries skipped",
			paths:       []string{"testdata/dir"},
			wantObjects: []string{"Service walk/a", "Service walk/b", "Service walk/z", "Node node-c"},
		},
		{
			name:        "duplicates across files keep the first",
			paths:       []string{"testdata/dup"},
			wantObjects: []string{"Service default/same"},
			wantProblems: []string{
				"error: testdata/dup/two.yaml: document 1 (line 1): Service default/same: duplicate of the one in testdata/dup/one.yaml: document 1 (line 1); this copy is ignored",
			},
		},
		{
			name:        "a file named explicitly is read whatever its extension",
			paths:       []string{"testdata/dir/sub/notes.txt", "testdata/node.json"},
			wantObjects: []string{"Node node-b"},
			wantProblems: []string{
				"error: testdata/dir/sub/notes.txt: document 1 (line 1): not an object: a Kubernetes manifest document must be a mapping with apiVersion and kind",
			},
		},
		{
			name:        "missing path does not stop the others",
			paths:       []string{"testdata/missing.yaml", "testdata/node.json"},
			wantObjects: []string{"Node node-b"},
			wantProblems: []string{
				"error: testdata/missing.yaml: no such file or directory",
			},
		},
		{
			name:         "no paths",
			wantProblems: []string{"error: no input: give at least one file or directory"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, errs := Read(tc.paths)
			if diff := cmp.Diff(tc.wantObjects, summarize(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			matchProblems(t, problems(errs), tc.wantProblems)
			for _, err := range errs {
				var e *Error
				var n *Notice
				if !errors.As(err, &e) && !errors.As(err, &n) && err.Error() != "no input: give at least one file or directory" {
					t.Errorf("%v is neither an *Error nor a *Notice", err)
				}
			}
		})
	}
}

func TestReadKeepsContent(t *testing.T) {
	objs, errs := Read([]string{"testdata/multi.yaml"})
	if len(errs) != 1 || !IsNotice(errs[0]) {
		t.Fatalf("want exactly the Deployment notice, got %v", errs)
	}
	wantService := &v1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: v1.ServiceSpec{
			ClusterIP: "10.96.0.10",
			Ports:     []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstrFromInt(8080)}},
		},
	}
	if diff := cmp.Diff(wantService, objs.Services[0]); diff != "" {
		t.Errorf("service (-want +got):\n%s", diff)
	}
	slice := objs.EndpointSlices[0]
	if slice.AddressType != discovery.AddressTypeIPv4 || len(slice.Endpoints) != 1 ||
		slice.Endpoints[0].Addresses[0] != "10.244.1.5" || *slice.Endpoints[0].NodeName != "node-a" ||
		*slice.Ports[0].Port != 8080 || slice.Labels[discovery.LabelServiceName] != "web" {
		t.Errorf("endpointslice decoded wrongly: %+v", slice)
	}
	src, ok := objs.SourceOf(objs.EndpointSlices[1])
	if want := "testdata/multi.yaml: document 6 (line 37): EndpointSlice shop/orphan"; !ok || src.String() != want {
		t.Errorf("SourceOf(orphan) = %q, %v; want %q", src, ok, want)
	}
	if _, ok := objs.SourceOf(&v1.Service{}); ok {
		t.Errorf("SourceOf found an object that was never read")
	}
	// The slice without a service label is kept; the endpoints package reports it.
	if orphan := objs.EndpointSlices[1]; orphan.Labels[discovery.LabelServiceName] != "" {
		t.Errorf("orphan slice has a service label: %v", orphan.Labels)
	}
}

func TestReadNodeIsClusterScoped(t *testing.T) {
	objs, _ := Read([]string{"testdata/list.yaml"})
	if len(objs.Nodes) != 1 {
		t.Fatalf("want one node, got %d", len(objs.Nodes))
	}
	node := objs.Nodes[0]
	if node.Namespace != "" {
		t.Errorf("node namespace = %q, want it cleared", node.Namespace)
	}
	if node.Labels[v1.LabelTopologyZone] != "zone-a" {
		t.Errorf("node zone label = %q, want zone-a", node.Labels[v1.LabelTopologyZone])
	}
}

func TestReadStdin(t *testing.T) {
	const manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: in}\n"
	objs, errs := read([]string{"-"}, strings.NewReader(manifest))
	if len(errs) != 0 {
		t.Fatalf("unexpected problems: %v", errs)
	}
	if diff := cmp.Diff([]string{"Service in/s"}, summarize(objs)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	_, errs = read([]string{"-"}, strings.NewReader("kind: Service\n"))
	matchProblems(t, problems(errs), []string{"error: -: document 1 (line 1): Service: no apiVersion"})
}

func TestReadDirectoryWithoutManifests(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, errs := Read([]string{dir})
	if objs.Len() != 0 {
		t.Errorf("got objects %v", summarize(objs))
	}
	matchProblems(t, problems(errs), []string{"error: " + dir + ": directory holds no .yaml, .yml, .json files"})
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name         string
		data         string
		wantObjects  []string
		wantProblems []string
	}{
		{
			name:        "leading separator and CRLF line ends",
			data:        "---\r\napiVersion: v1\r\nkind: Node\r\nmetadata:\r\n  name: n1\r\n---\r\napiVersion: v1\r\nkind: Node\r\nmetadata:\r\n  name: n2\r\n",
			wantObjects: []string{"Node n1", "Node n2"},
		},
		{
			name:        "document on the separator line and a separator with a comment",
			data:        "--- {apiVersion: v1, kind: Node, metadata: {name: n1}}\n--- # next\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n",
			wantObjects: []string{"Node n1", "Node n2"},
		},
		{
			name:        "a line of dashes longer than three is content",
			data:        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  annotations:\n    note: |\n      ----\n",
			wantObjects: []string{"Node n1"},
		},
		{
			name:        "typed EndpointSliceList",
			data:        `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSliceList","items":[{"metadata":{"name":"s1"},"addressType":"IPv6","endpoints":[{"addresses":["fd00::1"]}]}]}`,
			wantObjects: []string{"EndpointSlice default/s1"},
		},
		{
			name: "list of a kind not used is one notice per item",
			data: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d, namespace: x}}\n- 42\n",
			wantProblems: []string{
				"notice: f.yaml: document 1 (line 1), item 1: Deployment x/d: skipped: kind Deployment is not used by switchyard",
				"error: f.yaml: document 1 (line 1), item 2: list item is not an object",
			},
		},
		{
			name: "nested list",
			data: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n",
			wantProblems: []string{
				"error: f.yaml: document 1 (line 1), item 1: List: a list nested in a list is not supported",
			},
		},
		{
			name: "a kind of another group that shares a name is not ours",
			data: "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
			wantProblems: []string{
				"notice: f.yaml: document 1 (line 1): Widget w: skipped: kind Widget is not used by switchyard",
			},
		},
		{
			name: "core kind not used by switchyard",
			data: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\n",
			wantProblems: []string{
				"notice: f.yaml: document 1 (line 1): Pod x/p: skipped: kind Pod is not used by switchyard",
			},
		},
		{
			name: "Service in the wrong group",
			data: "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: k, namespace: x}\n",
			wantProblems: []string{
				"error: f.yaml: document 1 (line 1): Service x/k: apiVersion serving.knative.dev/v1 is not supported for Service; use v1",
			},
		},
		{
			name:        "concatenated JSON values",
			data:        `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"}}` + "\n" + `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n2"}} 42`,
			wantObjects: []string{"Node n1", "Node n2"},
			wantProblems: []string{
				"error: f.yaml: document 3 (line 2): not an object: a Kubernetes manifest document must be a mapping with apiVersion and kind",
			},
		},
		{
			name:        "JSON stream with a syntax error after the first value",
			data:        `{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"}}` + "\n\n" + `{"apiVersion": "v1", "kind": [}`,
			wantObjects: []string{"Node n1"},
			wantProblems: []string{
				"error: f.yaml: document 2 (line 3): not valid YAML or JSON: ...",
			},
		},
		{
			name:        "YAML document end markers",
			data:        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n...\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n...\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
			wantObjects: []string{"Node n1", "Node n2"},
			wantProblems: []string{
				"notice: f.yaml: document 3 (line 10): Pod p: skipped: kind Pod is not used by switchyard",
			},
		},
		{
			name: "empty input",
			data: "",
		},
		{
			name: "comments only",
			data: "# nothing\n---\n# still nothing\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, errs := Decode("f.yaml", []byte(tc.data))
			if diff := cmp.Diff(tc.wantObjects, summarize(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			matchProblems(t, problems(errs), tc.wantProblems)
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []document
	}{
		{name: "empty", data: "", want: []document{{line: 1, data: []byte{}}}},
		{name: "one", data: "a: 1\n", want: []document{{line: 1, data: []byte("a: 1\n")}}},
		{
			name: "empty documents count",
			data: "a: 1\n---\n---\nb: 2\n",
			want: []document{{line: 1, data: []byte("a: 1\n")}, {line: 3, data: []byte{}}, {line: 4, data: []byte("b: 2\n")}},
		},
		{
			name: "leading separator",
			data: "\n---\na: 1\n",
			want: []document{{line: 3, data: []byte("a: 1\n")}},
		},
		{
			name: "comment before the first separator is a document",
			data: "# header\n---\na: 1\n",
			want: []document{{line: 1, data: []byte("# header\n")}, {line: 3, data: []byte("a: 1\n")}},
		},
		{
			name: "content on the separator line",
			data: "--- a: 1\n",
			want: []document{{line: 1, data: []byte(" a: 1\n")}},
		},
		{
			name: "document end markers",
			data: "a: 1\n...\n---\nb: 2\n...\nc: 3\n",
			want: []document{{line: 1, data: []byte("a: 1\n")}, {line: 4, data: []byte("b: 2\n")}, {line: 6, data: []byte("c: 3\n")}},
		},
		{
			name: "no final newline",
			data: "a: 1\n---",
			want: []document{{line: 1, data: []byte("a: 1\n")}, {line: 3, data: []byte{}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := splitDocuments([]byte(tc.data))
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(document{}), cmp.Comparer(func(a, b []byte) bool { return string(a) == string(b) })); diff != "" {
				t.Errorf("splitDocuments (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	tests := []struct {
		src  Source
		want string
	}{
		{Source{File: "a.yaml"}, "a.yaml"},
		{Source{File: "a.yaml", Document: 2, Line: 9}, "a.yaml: document 2 (line 9)"},
		{Source{File: "a.yaml", Document: 1, Item: 3, Kind: "Service", Namespace: "ns", Name: "web"}, "a.yaml: document 1, item 3: Service ns/web"},
		{Source{File: "a.yaml", Document: 1, Kind: "Node", Name: "n"}, "a.yaml: document 1: Node n"},
		{Source{File: "a.yaml", Document: 1, Name: "n"}, "a.yaml: document 1: object n"},
	}
	for _, tc := range tests {
		if got := tc.src.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestIsNotice(t *testing.T) {
	notice := &Notice{Source: Source{File: "f"}, Message: "skipped"}
	if !IsNotice(notice) || !IsNotice(errors.Join(errors.New("x"), notice)) {
		t.Errorf("IsNotice misses a notice")
	}
	if IsNotice(&Error{Source: Source{File: "f"}, Err: errors.New("bad")}) || IsNotice(errors.New("bad")) {
		t.Errorf("IsNotice takes an error for a notice")
	}
	inner := errors.New("inner")
	if err := (&Error{Err: inner}); !errors.Is(err, inner) {
		t.Errorf("Error does not unwrap")
	}
}

func TestFromClient(t *testing.T) {
	objects := []runtime.Object{
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}},
		&discovery.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop"}},
		&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}},
	}
	got, err := fromClient(context.Background(), fake.NewClientset(objects...))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Service default/kubernetes", "Service shop/web", "EndpointSlice shop/web-1", "Node node-a"}
	if diff := cmp.Diff(want, summarize(got)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fromClient(ctx, fake.NewClientset()); !errors.Is(err, context.Canceled) {
		t.Errorf("fromClient with a cancelled context returned %v", err)
	}
}

func TestFromClusterBadKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-kubeconfig")
	_, err := FromCluster(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("FromCluster(%q) = %v, want an error naming the path", path, err)
	}
}

func intstrFromInt(i int) intstr.IntOrString { return intstr.FromInt32(int32(i)) }
