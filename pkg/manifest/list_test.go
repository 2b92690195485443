package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// IP plan of the generated dumps: service i has ClusterIP 10.96.x.y (i+10 in the last
// two octets), its endpoints are 10.244.x.y, unique within the service.

// TestDecodeListItemByItem checks that a List is decoded item by item: a bad item in
// the middle is reported with its index and name, and the items around it are kept.
//
// mutation-checked: treating sigs.k8s.io/json's "duplicate field" as a mere warning in
// decodeTyped fails "duplicate field in an item drops only that item"; dropping the
// duplicate-key check in objectFields fails "duplicate member in an item"; not
// skipping the character after a backslash in skipString fails "escaped quotes and
// brackets in strings" (and TestReadBigDump); dropping SetGroupVersionKind in
// decodeTyped fails "typed list items get their kind"; dropping json.Valid from
// splitValidJSON fails "YAML flow style that only looks like JSON"; decoding with
// encoding/json instead of sigs.k8s.io/json's strict mode fails the duplicate, unknown
// field and case cases here and TestRead's unknown-field case.
func TestDecodeListItemByItem(t *testing.T) {
	svc := func(name, extra string) string {
		return `{"apiVersion":"v1","kind":"Service","metadata":{"name":"` + name + `","namespace":"ns"},"spec":{"clusterIP":"10.96.0.1","ports":[{"port":80}]` + extra + `}}`
	}
	list := func(items ...string) string {
		return `{"apiVersion":"v1","items":[` + strings.Join(items, ",\n") + `],"kind":"List","metadata":{}}`
	}
	tests := []struct {
		name         string
		data         string
		wantObjects  []string
		wantProblems []string
	}{
		{
			name:        "a bad item in the middle is reported and the rest kept",
			data:        list(svc("a", ""), svc("b", `,"type":5`), svc("c", "")),
			wantObjects: []string{"Service ns/a", "Service ns/c"},
			wantProblems: []string{
				"error: f.json: document 1 (line 1), item 2: Service ns/b: decoding: json: cannot unmarshal number into Go struct field ServiceSpec.spec.type of type v1.ServiceType",
			},
		},
		{
			name:        "duplicate field in an item drops only that item",
			data:        list(svc("a", ""), svc("b", `,"clusterIP":"10.96.0.2"`), svc("c", "")),
			wantObjects: []string{"Service ns/a", "Service ns/c"},
			wantProblems: []string{
				`error: f.json: document 1 (line 1), item 2: Service ns/b: not valid YAML or JSON: duplicate field "spec.clusterIP"`,
			},
		},
		{
			name:        "duplicate member in an item",
			data:        list(`{"apiVersion":"v1","kind":"Node","kind":"Node","metadata":{"name":"n"}}`, svc("c", "")),
			wantObjects: []string{"Service ns/c"},
			wantProblems: []string{
				`error: f.json: document 1 (line 1), item 1: not valid YAML or JSON: duplicate key "kind"`,
			},
		},
		{
			name:        "unknown field keeps the item, not-an-object item is skipped",
			data:        list(svc("a", `,"externalTrafficPolcy":"Local"`), `"text"`, `null`, svc("c", "")),
			wantObjects: []string{"Service ns/a", "Service ns/c"},
			wantProblems: []string{
				`error: f.json: document 1 (line 1), item 1: Service ns/a: strict decoding error: unknown field "spec.externalTrafficPolcy" (the unknown fields are ignored)`,
				"error: f.json: document 1 (line 1), item 2: list item is not an object",
				"error: f.json: document 1 (line 1), item 3: list item is not an object",
			},
		},
		{
			name: "escaped quotes and brackets in strings",
			data: list(
				`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"ns","annotations":{"note":"a \"}]\\\" [{"}},"spec":{"clusterIP":"10.96.0.1","ports":[{"port":80}]}}`,
				svc("c", "")),
			wantObjects: []string{"Service ns/a", "Service ns/c"},
		},
		{
			name:        "typed list items get their kind",
			data:        `{"apiVersion":"v1","kind":"ServiceList","metadata":{},"items":[{"metadata":{"name":"a","namespace":"ns"}}]}`,
			wantObjects: []string{"Service ns/a"},
		},
		{
			name:         "items that are not an array",
			data:         `{"apiVersion":"v1","kind":"List","items":{"a":1}}`,
			wantProblems: []string{"error: f.json: document 1 (line 1): List: decoding items: json: cannot unmarshal object into Go value of type []json.RawMessage"},
		},
		{
			name: "items null or missing",
			data: `{"apiVersion":"v1","kind":"List","items":null}` + "\n" + `{"apiVersion":"v1","kind":"ServiceList"}`,
		},
		{
			name:        "YAML flow style that only looks like JSON",
			data:        "{apiVersion: v1, kind: Node, metadata: {name: n1}}\n",
			wantObjects: []string{"Node n1"},
		},
		{
			// The universal deserializer found no kind and dropped the object; now
			// it is kept, with a warning.
			name:        "kind spelt with another case, as encoding/json accepts",
			data:        `{"apiVersion":"v1","Kind":"Node","metadata":{"name":"n1"}}`,
			wantObjects: []string{"Node n1"},
			wantProblems: []string{
				`error: f.json: document 1 (line 1): Node n1: strict decoding error: unknown field "Kind" (the unknown fields are ignored)`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, errs := Decode("f.json", []byte(tc.data))
			if diff := cmp.Diff(tc.wantObjects, summarize(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			matchProblems(t, problems(errs), tc.wantProblems)
			for _, svc := range objs.Services {
				if svc.Kind != "Service" || svc.APIVersion != "v1" {
					t.Errorf("Service %s has TypeMeta %+v", svc.Name, svc.TypeMeta)
				}
			}
			if strings.Contains(tc.name, "escaped") && objs.Len() > 0 {
				if got, want := objs.Services[0].Annotations["note"], `a "}]\" [{`; got != want {
					t.Errorf("annotation = %q, want %q", got, want)
				}
			}
		})
	}
}

// writeDump writes a `kubectl get -o json`-style List of services Services with
// endpoints ready endpoints each, one EndpointSlice per Service, a ConfigMap (a kind
// dry-run skips) in the middle and a Node at the end.
func writeDump(w *bytes.Buffer, services, endpoints int) {
	w.WriteString(`{"apiVersion":"v1","items":[` + "\n")
	for i := range services {
		n := i + 10
		fmt.Fprintf(w, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-%d","namespace":"ns-%d","uid":"u-%d","resourceVersion":"%d","labels":{"app":"a%d"}},`+
			`"spec":{"clusterIP":"10.96.%d.%d","clusterIPs":["10.96.%d.%d"],"type":"ClusterIP","sessionAffinity":"None",`+
			`"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}]},"status":{"loadBalancer":{}}},`+"\n",
			i, i%7, i, 1000+i, i, n>>8&255, n&255, n>>8&255, n&255)
		if i == services/2 {
			w.WriteString(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns-0"},"data":{"k":"]}\"{["}},` + "\n")
		}
	}
	for i := range services {
		fmt.Fprintf(w, `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"svc-%d-abc","namespace":"ns-%d",`+
			`"labels":{"kubernetes.io/service-name":"svc-%d","endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"},`+
			`"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-12-01T00:00:00Z"}},"addressType":"IPv4","endpoints":[`, i, i%7, i)
		for j := range endpoints {
			if j > 0 {
				w.WriteString(",")
			}
			n := i*endpoints + j
			fmt.Fprintf(w, `{"addresses":["10.244.%d.%d"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"node-%d"}`, n>>8&255, n&255, j%3)
		}
		w.WriteString(`],"ports":[{"name":"http","protocol":"TCP","port":8080}]},` + "\n")
	}
	w.WriteString(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-0"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.0.10"}]}}` + "\n")
	w.WriteString(`],"kind":"List","metadata":{"resourceVersion":""}}` + "\n")
}

// referenceDecoder is how every object was decoded before the List was walked item by
// item: apimachinery's strict universal deserializer. The big dump is checked against
// it object by object.
var referenceDecoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	_ = v1.AddToScheme(scheme)
	_ = discovery.AddToScheme(scheme)
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// TestReadBigDump reads a generated 2000 × 10 dump and checks every object against the
// reference decoder's result for the same item, and where each came from. It asserts
// correctness only; the speed is measured by `make bench`.
//
// mutation-checked: numbering items from 0 in decodeList's Source fails the SourceOf
// check here (and TestDecodeListItemByItem, TestRead's List case); not skipping the
// character after a backslash in skipString fails the item count (the ConfigMap's
// escaped quote ends its string early).
func TestReadBigDump(t *testing.T) {
	const services, endpointsPer = 2000, 10
	var dump bytes.Buffer
	writeDump(&dump, services, endpointsPer)
	objs, errs := Decode("dump.json", dump.Bytes())
	wantNotice := fmt.Sprintf("notice: dump.json: document 1 (line 1), item %d: ConfigMap ns-0/cm: skipped: kind ConfigMap is not used by switchyard", services/2+2)
	matchProblems(t, problems(errs), []string{wantNotice})
	if len(objs.Services) != services || len(objs.EndpointSlices) != services || len(objs.Nodes) != 1 {
		t.Fatalf("got %d Services, %d EndpointSlices, %d Nodes; want %d, %d, 1", len(objs.Services), len(objs.EndpointSlices), len(objs.Nodes), services, services)
	}

	var items []json.RawMessage
	var list struct {
		Items *[]json.RawMessage `json:"items"`
	}
	list.Items = &items
	if err := json.Unmarshal(dump.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	var got []runtime.Object
	for _, s := range objs.Services {
		got = append(got, s)
	}
	for _, s := range objs.EndpointSlices {
		got = append(got, s)
	}
	got = append(got, objs.Nodes[0])
	var want []runtime.Object
	for _, item := range items {
		obj, _, err := referenceDecoder.Decode(item, nil, nil)
		if err != nil {
			t.Fatalf("reference decoder: %v", err)
		}
		if _, skipped := obj.(*v1.ConfigMap); skipped {
			continue
		}
		want = append(want, obj)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects differ from the reference decoder's (-want +got):\n%s", diff)
	}

	// Items count from 1; the ConfigMap after Service services/2 shifts the rest.
	for _, tc := range []struct {
		obj      any
		wantItem int
	}{{objs.Services[0], 1}, {objs.Services[services/2], services/2 + 1}, {objs.Services[services-1], services + 1}, {objs.EndpointSlices[0], services + 2}} {
		src, ok := objs.SourceOf(tc.obj)
		if !ok || src.Item != tc.wantItem || src.Document != 1 || src.File != "dump.json" {
			t.Errorf("source %v, want item %d of document 1", src, tc.wantItem)
		}
	}
	if ns := objs.Services[3].Namespace; ns != "ns-3" {
		t.Errorf("service 3 namespace = %q", ns)
	}
}

// BenchmarkReadDump decodes a 10k × 10 dump (one JSON List, as `kubectl get -o json`
// prints it) from memory; `make bench` also times the whole dry-run on such a file.
func BenchmarkReadDump(b *testing.B) {
	var dump bytes.Buffer
	writeDump(&dump, 10000, 10)
	b.SetBytes(int64(dump.Len()))
	b.ReportAllocs()
	for b.Loop() {
		objs, errs := Decode("dump.json", dump.Bytes())
		if len(errs) != 1 || objs.Len() != 20001 {
			b.Fatalf("got %d objects, problems %v", objs.Len(), errs)
		}
	}
}
