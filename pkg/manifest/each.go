package manifest

import (
	"io"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
)

// ReadEach reads paths as Read does, but hands each Service, EndpointSlice and Node to
// visit as soon as it is decoded, with where it was found (its kind, namespace and
// name filled in), instead of keeping them. A caller that converts each object on the
// spot, as `switchyard dry-run` feeds its change tracker, then never holds the whole
// input decoded: at 10k Services × 10 endpoints the decoded objects were 49 MB of a
// 70 MB peak heap.
//
// visit sees exactly the objects Read would return, in the same order, with namespaces
// defaulted and duplicates already refused; the problems come back as Read's do. Each
// document is checked for syntax before any of its objects is visited, so a List that
// turns out to be broken yields no objects at all, as with Read.
func ReadEach(paths []string, visit func(obj runtime.Object, src Source)) []error {
	return readEach(paths, os.Stdin, visit)
}

func readEach(paths []string, stdin io.Reader, visit func(obj runtime.Object, src Source)) []error {
	r := &reader{objects: &Objects{}, seen: map[string]Source{}, visit: visit}
	r.readAll(paths, stdin)
	return r.errs
}
