// Package manifest reads the Kubernetes objects that Switchyard proxies (Services,
// EndpointSlices and Nodes) from YAML or JSON files, for `switchyard dry-run -f`, or lists
// them from a cluster. It only decodes: whether a Service's IPs and ports can be
// programmed is the endpoints package's call (endpoints.ServicePorts reports that), so a
// dry run shows the same errors a running proxy would log.
//
// Reading never stops at the first problem. Every file, document and object is decoded on
// its own, and each problem comes back as an *Error (the input is wrong) or a *Notice (the
// input was skipped on purpose, such as a Deployment in the same manifest), both naming
// the file, the document and, when it is known, the object.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Objects holds the objects Switchyard proxies, in input order.
type Objects struct {
	// Services holds every Service, with an empty namespace defaulted to "default".
	Services []*v1.Service
	// EndpointSlices holds every EndpointSlice, with an empty namespace defaulted to
	// "default". Slices without a kubernetes.io/service-name label are kept: the
	// endpoints package reports them, as it does for a running proxy.
	EndpointSlices []*discovery.EndpointSlice
	// Nodes holds every Node.
	Nodes []*v1.Node

	// sources records where each decoded object was found, for SourceOf.
	sources map[any]Source
}

// SourceOf returns where obj (one of the pointers in o) was read from, so that errors
// found later, such as endpoints.ServicePorts rejecting an IP, can name the file and
// document too. It returns false for objects that did not come from files.
func (o *Objects) SourceOf(obj any) (Source, bool) {
	src, ok := o.sources[obj]
	return src, ok
}

// Len returns the number of objects.
func (o *Objects) Len() int {
	return len(o.Services) + len(o.EndpointSlices) + len(o.Nodes)
}

// Source says where in the input an object or a problem is: the file, the document in it
// and, inside a List, the item; and the object, once its kind and name are known.
type Source struct {
	// File is the path as given or found while walking a directory; "-" is stdin.
	File string
	// Document is the 1-based index of the YAML document in the file, or 0 when the
	// problem concerns the whole file.
	Document int
	// Line is the line the document starts on, or 0.
	Line int
	// Item is the 1-based index in a List's items, or 0 outside a List.
	Item int
	// Kind, Namespace and Name identify the object, as far as they are known.
	Kind, Namespace, Name string
}

// String returns e.g. "svc.yaml: document 2 (line 14), item 1: Service default/web".
func (s Source) String() string {
	var b strings.Builder
	b.WriteString(s.File)
	if s.Document > 0 {
		fmt.Fprintf(&b, ": document %d", s.Document)
		if s.Line > 0 {
			fmt.Fprintf(&b, " (line %d)", s.Line)
		}
		if s.Item > 0 {
			fmt.Fprintf(&b, ", item %d", s.Item)
		}
	}
	if s.Kind == "" && s.Name == "" {
		return b.String()
	}
	b.WriteString(": ")
	if s.Kind == "" {
		b.WriteString("object")
	} else {
		b.WriteString(s.Kind)
	}
	switch {
	case s.Namespace != "" && s.Name != "":
		b.WriteString(" " + s.Namespace + "/" + s.Name)
	case s.Name != "":
		b.WriteString(" " + s.Name)
	}
	return b.String()
}

// Error is a problem with the input: a file that cannot be read, a document that does not
// parse, or an object that cannot be decoded. The object it concerns is left out, unless
// the problem is an unknown field (which is ignored, as the API server's non-strict
// decoding would): then the object is kept and the error warns that part of it was not
// understood.
type Error struct {
	Source Source
	Err    error
}

// Error returns the source followed by the problem.
func (e *Error) Error() string { return e.Source.String() + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Notice reports input that was skipped on purpose, such as a Deployment in a manifest
// that also holds Services. It is not a failure: callers print it and carry on, and a
// dry run with only notices succeeds.
type Notice struct {
	Source  Source
	Message string
}

// Error returns the source followed by the message, so a Notice can travel in an error
// list.
func (n *Notice) Error() string { return n.Source.String() + ": " + n.Message }

// IsNotice reports whether err is, or wraps, a *Notice rather than a real error.
func IsNotice(err error) bool {
	var n *Notice
	return errors.As(err, &n)
}

// manifestExtensions are the file name endings read when walking a directory. Files named
// explicitly are read whatever their name.
var manifestExtensions = []string{".yaml", ".yml", ".json"}

// Read decodes every Service, EndpointSlice and Node in paths. A path may be a file (read
// whatever its name), a directory (walked recursively in lexical order, reading
// .yaml, .yml and .json files and skipping entries whose names start with "."), or "-"
// for standard input. The returned list holds *Error and *Notice values, in input order;
// whatever could be decoded is returned regardless.
func Read(paths []string) (*Objects, []error) {
	return read(paths, os.Stdin)
}

func read(paths []string, stdin io.Reader) (*Objects, []error) {
	r := &reader{objects: &Objects{}, seen: map[string]Source{}}
	r.readAll(paths, stdin)
	return r.objects, r.errs
}

// readAll reads every path in turn.
func (r *reader) readAll(paths []string, stdin io.Reader) {
	if len(paths) == 0 {
		r.errs = append(r.errs, errors.New("no input: give at least one file or directory"))
	}
	for _, path := range paths {
		r.readPath(path, stdin)
	}
}

// Decode decodes the objects in data, which came from the file called name (used only in
// messages). data may hold several YAML documents, a JSON object, or Lists.
func Decode(name string, data []byte) (*Objects, []error) {
	r := &reader{objects: &Objects{}, seen: map[string]Source{}}
	r.decodeFile(name, data)
	return r.objects, r.errs
}

// reader accumulates objects and problems across files.
type reader struct {
	objects *Objects
	errs    []error
	// seen maps "Kind namespace/name" to where it was first found, to report
	// duplicates, which would otherwise make the result depend on input order.
	seen map[string]Source
	// visit, when set, receives each object instead of objects (see ReadEach).
	visit func(obj runtime.Object, src Source)
}

func (r *reader) fail(src Source, err error) {
	r.errs = append(r.errs, &Error{Source: src, Err: err})
}

func (r *reader) readPath(path string, stdin io.Reader) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			r.fail(Source{File: path}, fmt.Errorf("reading standard input: %w", err))
			return
		}
		r.decodeFile(path, data)
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		r.fail(Source{File: path}, withoutPath(err))
		return
	}
	if !info.IsDir() {
		r.readFile(path)
		return
	}
	found := false
	// WalkDir visits entries in lexical order, so the result does not depend on the
	// file system.
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			r.fail(Source{File: p}, withoutPath(err))
			if d != nil && d.IsDir() && p != path {
				return fs.SkipDir
			}
			return nil
		}
		if p != path && strings.HasPrefix(d.Name(), ".") {
			// Editor backups, .git and the like are never manifests.
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !hasManifestExtension(d.Name()) {
			return nil
		}
		found = true
		r.readFile(p)
		return nil
	})
	if err != nil {
		r.fail(Source{File: path}, err)
	}
	if !found {
		r.fail(Source{File: path}, fmt.Errorf("directory holds no %s files", strings.Join(manifestExtensions, ", ")))
	}
}

// withoutPath drops the path from an *fs.PathError, which the Source already names.
func withoutPath(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}

func hasManifestExtension(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range manifestExtensions {
		if ext == e {
			return true
		}
	}
	return false
}

func (r *reader) readFile(path string) {
	// Streaming helps only a caller that does not keep the objects either.
	if r.visit != nil && r.streamFile(path) {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		r.fail(Source{File: path}, withoutPath(err))
		return
	}
	r.decodeFile(path, data)
}

// decodeFile splits a file into documents and decodes each: a stream of JSON values, or
// YAML documents separated by "---" lines.
func (r *reader) decodeFile(name string, data []byte) {
	docs, ok := splitJSON(data)
	if !ok {
		docs = splitDocuments(data)
	}
	for i, doc := range docs {
		src := Source{File: name, Document: i + 1, Line: doc.line}
		if doc.json {
			r.decodeJSONDocument(src, doc.data)
			continue
		}
		r.decodeDocument(src, doc.data)
	}
}

// splitJSON splits a stream of JSON values, such as the output of several `kubectl get
// -o json` runs concatenated. It reports false if data is not JSON, to be read as YAML
// instead. Without it, the YAML parser would read the first value and silently drop the
// rest. A syntax error after the first value yields the valid values and then the
// rest of the stream as one last document, whose decoding reports the error.
//
// The documents are slices of data, not copies, and are marked as valid JSON, so that
// decodeDocument skips the YAML converter: for a 19 MB `kubectl get -o json` dump,
// converting through YAML took 60% of a dry run's time and most of its memory.
func splitJSON(data []byte) ([]document, bool) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false
	}
	if docs, ok := splitValidJSON(data); ok {
		return docs, true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []document
	for {
		start := dec.InputOffset()
		// validOnly checks the value's syntax without copying it (json.RawMessage would).
		var value validOnly
		err := dec.Decode(&value)
		if err == io.EOF {
			return docs, true
		}
		if err != nil {
			if len(docs) == 0 {
				return nil, false // YAML flow style, such as {apiVersion: v1, ...}
			}
			rest := data[start:]
			return append(docs, document{line: lineAt(data, start+leadingSpace(rest)), data: rest}), true
		}
		offset := start + leadingSpace(data[start:])
		docs = append(docs, document{line: lineAt(data, offset), data: data[offset:dec.InputOffset()], json: true})
	}
}

// splitValidJSON is splitJSON's fast path for the common case, a stream of valid JSON
// values separated by white space: one validating scan per value, with no decoder
// buffering a copy of it. It reports false on anything else, for splitJSON's decoder
// to find the values it can and report the rest as before.
func splitValidJSON(data []byte) ([]document, bool) {
	var docs []document
	// Lines are counted from the previous value on, not from the start each time,
	// so that a stream of many small values stays linear.
	line, counted := 1, 0
	for offset := skipSpace(data, 0); offset < len(data); offset = skipSpace(data, offset) {
		end, err := skipValue(data, offset)
		if err != nil || !json.Valid(data[offset:end]) {
			return nil, false
		}
		line += bytes.Count(data[counted:offset], []byte("\n"))
		counted = offset
		docs = append(docs, document{line: line, data: data[offset:end], json: true})
		offset = end
	}
	return docs, true
}

// validOnly is a JSON value that is checked by the decoder and then dropped.
type validOnly struct{}

// UnmarshalJSON does nothing: the decoder has validated the value before calling it.
func (*validOnly) UnmarshalJSON([]byte) error { return nil }

func leadingSpace(data []byte) int64 {
	return int64(len(data) - len(bytes.TrimLeft(data, " \t\r\n")))
}

// lineAt returns the 1-based line of a byte offset.
func lineAt(data []byte, offset int64) int {
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// document is one YAML document of a file and the line it starts on.
type document struct {
	line int
	data []byte
	// json is set when data is known to be one valid JSON value, which needs no
	// conversion.
	json bool
}

// splitDocuments splits a YAML stream at its "---" separator lines and "..." document end
// lines (the YAML parser would silently ignore anything after either). It is written here,
// rather than using apimachinery's YAMLReader, so that empty documents still count
// (document 3 is the third one a person counts) and each document knows its line,
// which makes messages point at the right place in a long manifest.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine := 0, 1
	// ended is set by a "..." line; a "---" right after one starts the next document
	// without an empty one in between.
	ended := false
	add := func(end int) {
		if !ended || len(bytes.TrimSpace(data[start:end])) != 0 {
			docs = append(docs, document{line: startLine, data: data[start:end]})
		}
	}
	for pos, lineNo := 0, 1; pos < len(data); lineNo++ {
		next := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		if isDocumentEnd(data[pos:next]) {
			add(pos)
			start, startLine, ended = next, lineNo+1, true
		} else if rest, ok := afterSeparator(data[pos:next]); ok {
			add(pos)
			ended = false
			if len(rest) == 0 {
				start, startLine = next, lineNo+1
			} else {
				// "--- {kind: ...}": the document starts on the separator's line.
				start, startLine = pos+3, lineNo
			}
		}
		pos = next
	}
	add(len(data))
	if len(docs) == 0 {
		docs = append(docs, document{line: startLine, data: data[start:]})
	}
	// Text before a leading "---" is a document only if it holds something.
	if len(docs) > 1 && len(bytes.TrimSpace(docs[0].data)) == 0 {
		docs = docs[1:]
	}
	return docs
}

// isDocumentEnd reports whether line is a "..." document end marker.
func isDocumentEnd(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("..."))
	if !ok {
		return false
	}
	rest = bytes.TrimSpace(rest)
	return len(rest) == 0 || rest[0] == '#'
}

// afterSeparator reports whether line is a "---" document separator and returns what
// follows the marker on the same line, if it is more than a comment.
func afterSeparator(line []byte) ([]byte, bool) {
	if !bytes.HasPrefix(line, []byte("---")) {
		return nil, false
	}
	rest := line[3:]
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\r' && rest[0] != '\n' {
		return nil, false // "----" or "---x" is content, not a separator
	}
	rest = bytes.TrimSpace(rest)
	if len(rest) == 0 || rest[0] == '#' {
		return nil, true
	}
	return rest, true
}

// typeAndName is the part of any object needed to route it and to name it in messages.
type typeAndName struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func (r *reader) decodeDocument(src Source, doc []byte) {
	// Strict conversion rejects duplicate keys, which YAML parsers otherwise resolve by
	// silently keeping one of them.
	jsonDoc, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		r.fail(src, fmt.Errorf("not valid YAML or JSON: %w", err))
		return
	}
	r.decodeJSONDocument(src, jsonDoc)
}

// decodeJSONDocument decodes a document that is one valid JSON value.
func (r *reader) decodeJSONDocument(src Source, jsonDoc []byte) {
	jsonDoc = bytes.TrimSpace(jsonDoc)
	if len(jsonDoc) == 0 || bytes.Equal(jsonDoc, []byte("null")) {
		return // an empty document, or one holding only comments
	}
	if jsonDoc[0] != '{' {
		r.fail(src, errors.New("not an object: a Kubernetes manifest document must be a mapping with apiVersion and kind"))
		return
	}
	r.decodeObject(src, jsonDoc, schema.GroupVersionKind{})
}

// decodeObject decodes one JSON object and files what it found. listGVK is the kind
// implied by an enclosing typed list (a ServiceList's items carry no kind of their own
// in API responses).
func (r *reader) decodeObject(src Source, jsonDoc []byte, listGVK schema.GroupVersionKind) {
	r.file(decodeOne(src, jsonDoc, listGVK))
}

// decoded is what decoding one object found, to be filed by the reader: its problems,
// in order, then the object (nil if there is none to keep) or, for a List, its items.
// Decoding touches no reader state, so a List's items can be decoded in parallel and
// filed in order (see decodeItems).
type decoded struct {
	src      Source
	problems []error
	obj      runtime.Object
	// list is set for a List, whose items (the text of its items member) are
	// decoded next, with listGVK the kind it implies for them.
	list    bool
	items   []byte
	listGVK schema.GroupVersionKind
}

// fail records a problem with the object.
func (d *decoded) fail(err error) {
	d.problems = append(d.problems, &Error{Source: d.src, Err: err})
}

// file records what decoding one object found.
func (r *reader) file(d decoded) {
	r.errs = append(r.errs, d.problems...)
	switch {
	case d.list:
		r.decodeList(d.src, d.items, d.listGVK)
	case d.obj != nil:
		r.add(d.src, d.obj)
	}
}

// decodeOne decodes one JSON object.
func decodeOne(src Source, jsonDoc []byte, listGVK schema.GroupVersionKind) decoded {
	d := decoded{src: src}
	// Only the top-level members are split out here, so a List's items are not
	// decoded twice (once for its kind, once for its items).
	fields, err := objectFields(jsonDoc)
	if err != nil {
		// The YAML converter refused duplicate keys before the fast JSON path
		// existed; keep its wording.
		d.fail(fmt.Errorf("not valid YAML or JSON: %w", err))
		return d
	}
	meta, err := readTypeAndName(fields)
	if err != nil {
		// Decode the whole object the slow way for encoding/json's own message,
		// which names the field and type.
		if wholeErr := json.Unmarshal(jsonDoc, &meta); wholeErr != nil {
			err = wholeErr
		}
		d.fail(fmt.Errorf("reading apiVersion, kind and metadata: %w", err))
		return d
	}
	d.src.Kind, d.src.Namespace, d.src.Name = meta.Kind, meta.Metadata.Namespace, meta.Metadata.Name
	gvk := meta.GroupVersionKind()
	if gvk.Kind == "" && listGVK.Kind != "" {
		gvk = listGVK
		d.src.Kind = gvk.Kind
	}
	switch {
	case gvk.Kind == "":
		d.fail(errors.New("no kind"))
		return d
	case meta.APIVersion == "" && listGVK.Kind == "":
		d.fail(errors.New("no apiVersion"))
		return d
	}

	if gvk.Kind == "List" || (strings.HasSuffix(gvk.Kind, "List") && usedKinds[strings.TrimSuffix(gvk.Kind, "List")] != "") {
		d.list, d.items, d.listGVK = true, field(fields, "items"), gvk
		return d
	}
	wantGroupVersion, used := usedKinds[gvk.Kind]
	if !used {
		d.problems = append(d.problems, &Notice{Source: d.src, Message: fmt.Sprintf("skipped: kind %s is not used by switchyard", gvk.Kind)})
		return d
	}
	if gv := gvk.GroupVersion().String(); gv != wantGroupVersion {
		d.fail(fmt.Errorf("apiVersion %s is not supported for %s; use %s", gv, gvk.Kind, wantGroupVersion))
		return d
	}

	obj, err := decodeTyped(jsonDoc, gvk)
	if err != nil && !runtime.IsStrictDecodingError(err) {
		d.fail(err)
		return d
	}
	if err != nil {
		// The object decoded; only fields it does not have were dropped.
		d.fail(fmt.Errorf("%w (the unknown fields are ignored)", err))
	}
	d.obj = obj
	return d
}

// readTypeAndName decodes apiVersion, kind and metadata's name and namespace from an
// object's members. It reads only those members (and in metadata only name and
// namespace, not labels or annotations), since every item of a big List goes through it.
func readTypeAndName(fields []jsonField) (typeAndName, error) {
	var meta typeAndName
	for _, f := range []struct {
		key  string
		into *string
	}{{"apiVersion", &meta.APIVersion}, {"kind", &meta.Kind}} {
		if err := unmarshalString(fields, f.key, f.into); err != nil {
			return meta, err
		}
	}
	metadata := field(fields, "metadata")
	if metadata == nil {
		return meta, nil
	}
	metadataFields, err := objectFields(metadata)
	if err != nil {
		// Not an object, or with a duplicate key: let encoding/json decide, as
		// before, and the typed decoding report duplicates.
		return meta, json.Unmarshal(metadata, &meta.Metadata)
	}
	if err := unmarshalString(metadataFields, "name", &meta.Metadata.Name); err != nil {
		return meta, err
	}
	return meta, unmarshalString(metadataFields, "namespace", &meta.Metadata.Namespace)
}

// unmarshalString decodes the member key of fields, if there is one, into into.
func unmarshalString(fields []jsonField, key string, into *string) error {
	value := field(fields, key)
	if value == nil {
		return nil
	}
	if plain, ok := plainString(value); ok {
		*into = plain
		return nil
	}
	return json.Unmarshal(value, into)
}

// plainString returns the JSON string literal in value without its quotes, if it is
// printable ASCII with no escapes: what encoding/json would decode it to, without its
// reflection (every item of a big List has four such members). Anything else is left
// to encoding/json, which unescapes, replaces invalid UTF-8 and reports non-strings.
func plainString(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
		return "", false
	}
	inner := value[1 : len(value)-1]
	for _, c := range inner {
		if c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
			return "", false
		}
	}
	return string(inner), true
}

// decodeTyped decodes one Service, EndpointSlice or Node, strictly, as the API
// server's JSON serializer does (sigs.k8s.io/json: case-sensitive, integers kept,
// unknown and duplicate fields reported), straight into the typed object: the universal
// deserializer that did this before sniffed the format and read the kind again for
// every object. A duplicate field drops the object, as the YAML converter did before
// JSON skipped it; unknown fields only warn.
func decodeTyped(jsonDoc []byte, gvk schema.GroupVersionKind) (runtime.Object, error) {
	var obj runtime.Object
	switch gvk.Kind {
	case "Service":
		obj = &v1.Service{}
	case "EndpointSlice":
		if slice, ok := decodeSliceFast(jsonDoc); ok {
			slice.SetGroupVersionKind(gvk)
			return slice, nil
		}
		obj = &discovery.EndpointSlice{}
	case "Node":
		obj = &v1.Node{}
	default:
		return nil, fmt.Errorf("decoding: kind %s is not decoded", gvk.Kind)
	}
	strictErrs, err := kjson.UnmarshalStrict(jsonDoc, obj)
	if err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	// Items of a typed list carry no kind; the API server's decoder sets it.
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	for _, e := range strictErrs {
		// sigs.k8s.io/json words these "duplicate field \"name\"".
		if strings.HasPrefix(e.Error(), "duplicate field") {
			return nil, fmt.Errorf("not valid YAML or JSON: %w", e)
		}
	}
	if len(strictErrs) > 0 {
		return obj, runtime.NewStrictDecodingError(strictErrs)
	}
	return obj, nil
}

// usedKinds maps each kind Switchyard reads to the one group/version it accepts.
var usedKinds = map[string]string{
	"Service":       "v1",
	"Node":          "v1",
	"EndpointSlice": "discovery.k8s.io/v1",
}

// decodeList decodes the items of a v1 List (as `kubectl get -o yaml` prints) or of a
// typed list such as ServiceList (as the API returns). items is the text of the list's
// items member (nil if it has none). Each item is decoded and filed on its own, so a
// bad item is reported and the others are kept, and no copy of the list is made.
func (r *reader) decodeList(src Source, items []byte, gvk schema.GroupVersionKind) {
	if src.Item > 0 {
		r.fail(src, errors.New("a list nested in a list is not supported"))
		return
	}
	items = bytes.TrimSpace(items)
	if len(items) == 0 || bytes.Equal(items, []byte("null")) {
		return
	}
	if items[0] != '[' {
		// encoding/json's message names the type that was found.
		var list []json.RawMessage
		err := json.Unmarshal(items, &list)
		if err == nil {
			err = errMalformed
		}
		r.fail(src, fmt.Errorf("decoding items: %w", err))
		return
	}
	var itemGVK schema.GroupVersionKind
	if gvk.Kind != "List" {
		itemGVK = gvk.GroupVersion().WithKind(strings.TrimSuffix(gvk.Kind, "List"))
	}
	var elements [][]byte
	err := eachElement(items, func(_ int, item []byte) { elements = append(elements, item) })
	r.decodeItems(src, slices.Values(elements), len(elements), false, itemGVK)
	if err != nil {
		r.fail(src, fmt.Errorf("decoding items: %w", err))
	}
}

// decodeItem decodes the item at index of the List read from listSrc.
func decodeItem(listSrc Source, index int, item []byte, itemGVK schema.GroupVersionKind) decoded {
	itemSrc := Source{File: listSrc.File, Document: listSrc.Document, Line: listSrc.Line, Item: index + 1}
	if len(item) == 0 || item[0] != '{' {
		d := decoded{src: itemSrc}
		d.fail(errors.New("list item is not an object"))
		return d
	}
	return decodeOne(itemSrc, item, itemGVK)
}

// add files a decoded object, defaulting its namespace and refusing duplicates.
func (r *reader) add(src Source, obj runtime.Object) {
	var objMeta *metav1.ObjectMeta
	namespaced := true
	switch o := obj.(type) {
	case *v1.Service:
		objMeta = &o.ObjectMeta
	case *discovery.EndpointSlice:
		objMeta = &o.ObjectMeta
	case *v1.Node:
		objMeta = &o.ObjectMeta
		namespaced = false
	default:
		// The scheme knows every core/v1 and discovery/v1 kind, but usedKinds let only
		// these three through.
		r.fail(src, fmt.Errorf("decoded an unexpected %T", obj))
		return
	}
	if objMeta.Name == "" {
		r.fail(src, errors.New("no metadata.name"))
		return
	}
	if namespaced && objMeta.Namespace == "" {
		// kubectl apply puts namespace-less objects into the default namespace (or the
		// context's, which a dry run does not have).
		objMeta.Namespace = metav1.NamespaceDefault
	}
	if !namespaced {
		objMeta.Namespace = ""
	}
	src.Namespace = objMeta.Namespace

	key := src.Kind + " " + objMeta.Namespace + "/" + objMeta.Name
	if first, dup := r.seen[key]; dup {
		where := Source{File: first.File, Document: first.Document, Line: first.Line, Item: first.Item}
		r.fail(src, fmt.Errorf("duplicate of the one in %s; this copy is ignored", where))
		return
	}
	r.seen[key] = src
	if r.visit != nil {
		r.visit(obj, src)
		return
	}
	if r.objects.sources == nil {
		r.objects.sources = map[any]Source{}
	}
	r.objects.sources[obj] = src

	switch o := obj.(type) {
	case *v1.Service:
		r.objects.Services = append(r.objects.Services, o)
	case *discovery.EndpointSlice:
		r.objects.EndpointSlices = append(r.objects.EndpointSlices, o)
	case *v1.Node:
		r.objects.Nodes = append(r.objects.Nodes, o)
	}
}
