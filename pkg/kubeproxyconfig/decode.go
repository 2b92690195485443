package kubeproxyconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"
)

// Kind and APIVersion name the only configuration format Switchyard reads, the one
// kube-proxy v1.37 reads.
const (
	Kind       = "KubeProxyConfiguration"
	APIVersion = "kubeproxy.config.k8s.io/v1alpha1"
)

var (
	scheme = newScheme()
	// strictCodecs refuse unknown and duplicate fields; lenientCodecs drop them.
	strictCodecs  = serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	lenientCodecs = serializer.NewCodecFactory(scheme, serializer.DisableStrict)
)

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		// AddToScheme only fails on conflicting registrations, which a fresh scheme
		// cannot have.
		panic(err)
	}
	return s
}

// Load reads and decodes the configuration file at path. Warnings name each unknown or
// duplicate field that was dropped; an error names the file and, where it can be
// found, the field. The result is not defaulted.
func Load(path string) (*v1alpha1.KubeProxyConfiguration, []string, error) {
	cfg, _, warnings, err := load(path)
	return cfg, warnings, err
}

// load is Load that also returns the file's content.
func load(path string) (*v1alpha1.KubeProxyConfiguration, []byte, []string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config file %s: %w", path, unwrapPathError(err))
	}
	if info.IsDir() {
		return nil, nil, nil, fmt.Errorf("config file %s: is a directory, want a KubeProxyConfiguration file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config file %s: %w", path, unwrapPathError(err))
	}
	cfg, warnings, err := Decode(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	for i := range warnings {
		warnings[i] = fmt.Sprintf("config file %s: %s", path, warnings[i])
	}
	return cfg, data, warnings, nil
}

// unwrapPathError drops the path from an *os.PathError, which the caller already names.
func unwrapPathError(err error) error {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}

// Decode decodes a KubeProxyConfiguration v1alpha1 document. Like kube-proxy, it
// decodes strictly first; if that fails only because of unknown or duplicate fields, it
// decodes leniently and returns one warning per such field.
func Decode(data []byte) (*v1alpha1.KubeProxyConfiguration, []string, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, errors.New("is empty, want a KubeProxyConfiguration")
	}
	obj, _, err := strictCodecs.UniversalDeserializer().Decode(data, nil, nil)
	var warnings []string
	if err != nil {
		strictErr, isStrict := runtime.AsStrictDecodingError(err)
		if !isStrict {
			return nil, nil, describeDecodeError(data, err)
		}
		obj, _, err = lenientCodecs.UniversalDeserializer().Decode(data, nil, nil)
		if err != nil {
			return nil, nil, describeDecodeError(data, err)
		}
		for _, e := range strictErr.Errors() {
			warnings = append(warnings, e.Error()+" (ignored, as kube-proxy ignores it)")
		}
	}
	cfg, ok := obj.(*v1alpha1.KubeProxyConfiguration)
	if !ok {
		return nil, nil, fmt.Errorf("decoded a %T, want a %s", obj, Kind)
	}
	return cfg, warnings, nil
}

// describeDecodeError turns a decoder error into one line that says what is wrong:
// the kind or version, or the field whose value does not parse.
func describeDecodeError(data []byte, err error) error {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if yaml.Unmarshal(data, &meta) != nil {
		return fmt.Errorf("not valid YAML or JSON: %w", err)
	}
	switch {
	case meta.Kind == "" || meta.APIVersion == "":
		return fmt.Errorf("apiVersion %q, kind %q: want apiVersion %s and kind %s", meta.APIVersion, meta.Kind, APIVersion, Kind)
	case meta.Kind != Kind || meta.APIVersion != APIVersion:
		return fmt.Errorf("apiVersion %s, kind %s: want apiVersion %s and kind %s", meta.APIVersion, meta.Kind, APIVersion, Kind)
	}
	if path, fieldErr := locateBadField(data); path != "" {
		return fmt.Errorf("field %s: %w", path, fieldErr)
	}
	return err
}

// locateBadField finds the first field (in name order) whose value does not decode
// into its type, and returns its path (e.g. "conntrack.udpTimeout") and the error.
// The decoder's own errors do not always name the field (a bad duration does not).
func locateBadField(data []byte) (string, error) {
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return "", nil
	}
	var generic map[string]any
	if json.Unmarshal(jsonData, &generic) != nil {
		return "", nil
	}
	return locateIn(reflect.TypeFor[v1alpha1.KubeProxyConfiguration](), generic, "")
}

// locateIn checks each member of object against the struct type t.
func locateIn(t reflect.Type, object map[string]any, prefix string) (string, error) {
	fields := jsonFields(t)
	names := make([]string, 0, len(object))
	for name := range object {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fieldType, ok := fields[name]
		if !ok {
			continue
		}
		path := prefix + name
		raw, err := json.Marshal(object[name])
		if err != nil {
			continue
		}
		if err := json.Unmarshal(raw, reflect.New(fieldType).Interface()); err == nil {
			continue
		} else if sub, isObject := object[name].(map[string]any); isObject && isPlainStruct(fieldType) {
			if subPath, subErr := locateIn(fieldType, sub, path+"."); subPath != "" {
				return subPath, subErr
			}
			return path, simplifyJSONError(err)
		} else if fieldType == durationType || fieldType == reflect.PointerTo(durationType) {
			return path, fmt.Errorf("want a duration such as \"30s\": %w", simplifyJSONError(err))
		} else {
			return path, simplifyJSONError(err)
		}
	}
	return "", nil
}

// durationType is metav1.Duration, whose errors do not say a duration is expected.
var durationType = reflect.TypeFor[metav1.Duration]()

// jsonFields maps the JSON names of t's fields to their types, following inlined
// embedded structs as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

// isPlainStruct reports whether t is a struct decoded field by field, not one with its
// own UnmarshalJSON (like metav1.Duration).
func isPlainStruct(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	_, custom := reflect.New(t).Interface().(json.Unmarshaler)
	return !custom
}

// simplifyJSONError keeps the useful part of an encoding/json error.
func simplifyJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Errorf("cannot use a JSON %s as %s", typeErr.Value, typeErr.Type)
	}
	return err
}

// Encode writes cfg as KubeProxyConfiguration v1alpha1 YAML, in the form kube-proxy
// --write-config-to writes.
func Encode(w io.Writer, cfg *v1alpha1.KubeProxyConfiguration) error {
	out := cfg.DeepCopy()
	out.APIVersion, out.Kind = APIVersion, Kind
	encoder := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true})
	return encoder.Encode(out, w)
}
