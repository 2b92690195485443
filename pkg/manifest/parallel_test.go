package manifest

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParallelItemsAsSequential checks that a List long enough to be decoded in
// parallel gives exactly what decoding it item after item gives: the same objects in
// the same order, and the same problems, in the same order, at the same items. The
// List has a problem of every kind spread over several batches, including a duplicate
// whose first copy is in an earlier batch.
// mutation-checked: filing each batch as soon as it is decoded, whatever its place,
// fails this (objects and problems out of order); dropping the index offset (b.start)
// when numbering the items of a batch fails it too.
func TestParallelItemsAsSequential(t *testing.T) {
	var items []string
	for i := range 3 * parallelItems {
		item := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-%d","namespace":"ns"},"spec":{"clusterIP":"10.96.%d.%d","ports":[{"port":80}]}}`, i, i/250, i%250+1)
		switch i {
		case 70:
			item = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns"}}`
		case 130:
			item = `"not an object"`
		case 200:
			item = `{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-3","namespace":"ns"},"spec":{}}`
		case 333:
			item = `{"apiVersion":"v1","kind":"Service","metadata":{"name":"unknown","namespace":"ns"},"spec":{"bogus":1}}`
		case 400:
			item = `{"apiVersion":"v2","kind":"Service","metadata":{"name":"v2","namespace":"ns"}}`
		case 555:
			item = `{"apiVersion":"v1","kind":"List","items":[]}`
		case 600:
			item = `{"apiVersion":"v1","kind":"Service","metadata":{"name":7}}`
		}
		items = append(items, item)
	}
	var dump bytes.Buffer
	dump.WriteString(`{"apiVersion":"v1","kind":"List","items":[` + strings.Join(items, ",\n") + `]}`)

	decodeWith := func(procs int) (*Objects, []error) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		return Decode("list.json", dump.Bytes())
	}
	wantObjs, wantErrs := decodeWith(1)
	gotObjs, gotErrs := decodeWith(4)
	if len(wantErrs) != 7 || len(wantObjs.Services) != 3*parallelItems-6 {
		t.Fatalf("the sequential decoding found %d services and problems %v; the List is not what the test means", len(wantObjs.Services), wantErrs)
	}
	if diff := cmp.Diff(wantObjs.Services, gotObjs.Services); diff != "" {
		t.Errorf("services differ (-sequential +parallel):\n%s", diff)
	}
	for i, svc := range wantObjs.Services {
		want, _ := wantObjs.SourceOf(svc)
		if got, _ := gotObjs.SourceOf(gotObjs.Services[i]); got != want {
			t.Errorf("service %d: source %v, want %v", i, got, want)
		}
	}
	if diff := cmp.Diff(errorTexts(wantErrs), errorTexts(gotErrs)); diff != "" {
		t.Errorf("problems differ (-sequential +parallel):\n%s", diff)
	}
}
