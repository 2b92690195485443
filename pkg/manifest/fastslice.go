package manifest

import (
	"bytes"
	"strconv"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// decodeSliceFast decodes an EndpointSlice into exactly what sigs.k8s.io/json's
// strict decoding gives (decodeTyped), without its reflection, for the shape the
// endpoint slice controller writes: known members only, each once, strings without
// escapes, plain integers, no nulls. It reports false for anything else, and
// decodeTyped then decodes the object as before, with the same messages. At 10k
// Services × 10 endpoints the slices are three quarters of a dump and decoding them
// was a quarter of `switchyard dry-run -f`'s CPU time. data must be valid JSON.
//
// Members that are rare or complex (targetRef, ownerReferences, hints) are decoded by
// sigs.k8s.io/json itself, strictly, so that a problem in them also falls back.
func decodeSliceFast(data []byte) (*discovery.EndpointSlice, bool) {
	p := fastParser{data: data}
	slice := &discovery.EndpointSlice{}
	ok := p.object(func(key string) bool {
		switch key {
		case "kind":
			return p.str(&slice.Kind)
		case "apiVersion":
			return p.str(&slice.APIVersion)
		case "metadata":
			return p.objectMeta(&slice.ObjectMeta)
		case "addressType":
			return p.str((*string)(&slice.AddressType))
		case "endpoints":
			slice.Endpoints = []discovery.Endpoint{}
			return p.array(func() bool {
				slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{})
				return p.endpoint(&slice.Endpoints[len(slice.Endpoints)-1])
			})
		case "ports":
			slice.Ports = []discovery.EndpointPort{}
			return p.array(func() bool {
				slice.Ports = append(slice.Ports, discovery.EndpointPort{})
				return p.endpointPort(&slice.Ports[len(slice.Ports)-1])
			})
		}
		return false
	})
	if !ok || skipSpace(p.data, p.pos) != len(p.data) {
		return nil, false
	}
	return slice, true
}

// fastParser walks valid JSON for decodeSliceFast; every method reports false when
// the text is not of the shape it handles.
type fastParser struct {
	data []byte
	pos  int
}

// object calls member for each member of the object at pos, positioned at its value,
// with its key; a key seen twice, or with escapes, makes it report false.
func (p *fastParser) object(member func(key string) bool) bool {
	p.pos = skipSpace(p.data, p.pos)
	if p.pos >= len(p.data) || p.data[p.pos] != '{' {
		return false
	}
	p.pos = skipSpace(p.data, p.pos+1)
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return true
	}
	var seen [16]string
	n := 0
	for {
		var key string
		if !p.str(&key) {
			return false
		}
		for _, k := range seen[:n] {
			if k == key {
				return false
			}
		}
		if n == len(seen) {
			return false
		}
		seen[n] = key
		n++
		p.pos = skipSpace(p.data, p.pos)
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return false
		}
		p.pos = skipSpace(p.data, p.pos+1)
		if !member(key) {
			return false
		}
		p.pos = skipSpace(p.data, p.pos)
		if p.pos >= len(p.data) {
			return false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos = skipSpace(p.data, p.pos+1)
		case '}':
			p.pos++
			return true
		default:
			return false
		}
	}
}

// array calls element for each element of the array at pos, positioned at it.
func (p *fastParser) array(element func() bool) bool {
	p.pos = skipSpace(p.data, p.pos)
	if p.pos >= len(p.data) || p.data[p.pos] != '[' {
		return false
	}
	p.pos = skipSpace(p.data, p.pos+1)
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return true
	}
	for {
		if !element() {
			return false
		}
		p.pos = skipSpace(p.data, p.pos)
		if p.pos >= len(p.data) {
			return false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos = skipSpace(p.data, p.pos+1)
		case ']':
			p.pos++
			return true
		default:
			return false
		}
	}
}

// raw returns the text of the value at pos and moves past it.
func (p *fastParser) raw() ([]byte, bool) {
	end, err := skipValue(p.data, p.pos)
	if err != nil {
		return nil, false
	}
	value := p.data[p.pos:end]
	p.pos = end
	return value, true
}

// str decodes a string without escapes (plainString) into into.
func (p *fastParser) str(into *string) bool {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return false
	}
	end := bytes.IndexByte(p.data[p.pos+1:], '"')
	if end < 0 {
		return false
	}
	s, ok := plainString(p.data[p.pos : p.pos+end+2])
	if !ok {
		return false
	}
	*into = s
	p.pos += end + 2
	return true
}

// strPtr decodes a string into a new pointer, as for optional members.
func (p *fastParser) strPtr(into **string) bool {
	var s string
	if !p.str(&s) {
		return false
	}
	*into = &s
	return true
}

// boolPtr decodes true or false into a new pointer.
func (p *fastParser) boolPtr(into **bool) bool {
	var b bool
	switch {
	case bytes.HasPrefix(p.data[p.pos:], []byte("true")):
		b, p.pos = true, p.pos+4
	case bytes.HasPrefix(p.data[p.pos:], []byte("false")):
		p.pos += 5
	default:
		return false
	}
	*into = &b
	return true
}

// integer decodes a plain decimal integer (no fraction or exponent) of bitSize bits.
func (p *fastParser) integer(bitSize int) (int64, bool) {
	value, ok := p.raw()
	if !ok || bytes.ContainsAny(value, ".eE") {
		return 0, false
	}
	n, err := strconv.ParseInt(string(value), 10, bitSize)
	return n, err == nil
}

// strings decodes an array of strings; [] gives an empty, non-nil slice.
func (p *fastParser) strings(into *[]string) bool {
	list := []string{}
	ok := p.array(func() bool {
		var s string
		if !p.str(&s) {
			return false
		}
		list = append(list, s)
		return true
	})
	*into = list
	return ok
}

// stringMap decodes an object of strings; {} gives an empty, non-nil map.
func (p *fastParser) stringMap(into *map[string]string) bool {
	m := map[string]string{}
	ok := p.object(func(key string) bool {
		var s string
		if !p.str(&s) {
			return false
		}
		m[key] = s
		return true
	})
	*into = m
	return ok
}

// strict decodes the value at pos into into with sigs.k8s.io/json, strictly.
func (p *fastParser) strict(into any) bool {
	value, ok := p.raw()
	if !ok || string(value) == "null" {
		return false // null would reset the pointer or slice, not fill it
	}
	strictErrs, err := kjson.UnmarshalStrict(value, into)
	return err == nil && len(strictErrs) == 0
}

func (p *fastParser) objectMeta(meta *metav1.ObjectMeta) bool {
	return p.object(func(key string) bool {
		switch key {
		case "name":
			return p.str(&meta.Name)
		case "generateName":
			return p.str(&meta.GenerateName)
		case "namespace":
			return p.str(&meta.Namespace)
		case "uid":
			return p.str((*string)(&meta.UID))
		case "resourceVersion":
			return p.str(&meta.ResourceVersion)
		case "generation":
			n, ok := p.integer(64)
			meta.Generation = n
			return ok
		case "creationTimestamp":
			value, ok := p.raw()
			return ok && value[0] == '"' && meta.CreationTimestamp.UnmarshalJSON(value) == nil
		case "labels":
			return p.stringMap(&meta.Labels)
		case "annotations":
			return p.stringMap(&meta.Annotations)
		case "ownerReferences":
			return p.strict(&meta.OwnerReferences)
		}
		return false
	})
}

func (p *fastParser) endpoint(ep *discovery.Endpoint) bool {
	return p.object(func(key string) bool {
		switch key {
		case "addresses":
			return p.strings(&ep.Addresses)
		case "conditions":
			return p.object(func(key string) bool {
				switch key {
				case "ready":
					return p.boolPtr(&ep.Conditions.Ready)
				case "serving":
					return p.boolPtr(&ep.Conditions.Serving)
				case "terminating":
					return p.boolPtr(&ep.Conditions.Terminating)
				}
				return false
			})
		case "hostname":
			return p.strPtr(&ep.Hostname)
		case "nodeName":
			return p.strPtr(&ep.NodeName)
		case "zone":
			return p.strPtr(&ep.Zone)
		case "targetRef":
			ep.TargetRef = &v1.ObjectReference{}
			return p.strict(ep.TargetRef)
		case "hints":
			ep.Hints = &discovery.EndpointHints{}
			return p.strict(ep.Hints)
		}
		return false
	})
}

func (p *fastParser) endpointPort(port *discovery.EndpointPort) bool {
	return p.object(func(key string) bool {
		switch key {
		case "name":
			return p.strPtr(&port.Name)
		case "protocol":
			var s string
			ok := p.str(&s)
			protocol := v1.Protocol(s)
			port.Protocol = &protocol
			return ok
		case "port":
			n, ok := p.integer(32)
			number := int32(n)
			port.Port = &number
			return ok
		case "appProtocol":
			return p.strPtr(&port.AppProtocol)
		}
		return false
	})
}
