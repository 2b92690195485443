package manifest

import (
	"bytes"
	"errors"
	"fmt"
)

// The functions here walk JSON text that is already known to be valid (it passed
// encoding/json's validator in splitJSON, or came out of the YAML converter), to find a
// List's items without copying or decoding the whole document: decoding a 10k × 10
// cluster dump through one generic tree cost seconds and half a gigabyte, while each
// item on its own is a kilobyte. They still return an error, never panic, on text that
// is not valid after all.

// errMalformed is returned when the text is not valid JSON after all.
var errMalformed = errors.New("malformed JSON")

// jsonField is one member of a JSON object: its key (unescaped only when it holds no
// escapes, which the keys read here never do) and its value's text, both slices of the
// object's text: every item of a big List is split this way, and copying each key
// into a string was a tenth of the reader's allocations.
type jsonField struct {
	key   []byte
	value []byte
}

// objectFields returns the members of the JSON object in data, in order, without
// copying their values. It reports a key that appears twice, which the YAML converter
// would have refused and the API server refuses.
func objectFields(data []byte) ([]jsonField, error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, errMalformed
	}
	i = skipSpace(data, i+1)
	// Kubernetes objects have at most a handful of top-level members.
	fields := make([]jsonField, 0, 8)
	if i < len(data) && data[i] == '}' {
		return fields, nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return nil, errMalformed
		}
		end, err := skipString(data, i)
		if err != nil {
			return nil, err
		}
		key := data[i+1 : end-1]
		for _, f := range fields {
			if bytes.Equal(f.key, key) {
				return nil, fmt.Errorf("duplicate key %s", data[i:end])
			}
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, errMalformed
		}
		start := skipSpace(data, i+1)
		end, err = skipValue(data, start)
		if err != nil {
			return nil, err
		}
		fields = append(fields, jsonField{key: key, value: data[start:end]})
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, errMalformed
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return fields, nil
		default:
			return nil, errMalformed
		}
	}
}

// field returns the value of the member called key, or nil. Like encoding/json, which
// read these members before, it prefers an exact match and then takes a key that
// differs only in case.
func field(fields []jsonField, key string) []byte {
	for _, f := range fields {
		if string(f.key) == key {
			return f.value
		}
	}
	for _, f := range fields {
		if bytes.EqualFold(f.key, []byte(key)) {
			return f.value
		}
	}
	return nil
}

// eachElement calls visit with the text of each element of the JSON array in data, in
// order, without copying it.
func eachElement(data []byte, visit func(index int, element []byte)) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return errMalformed
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return nil
	}
	for index := 0; ; index++ {
		end, err := skipValue(data, i)
		if err != nil {
			return err
		}
		visit(index, data[i:end])
		i = skipSpace(data, end)
		if i >= len(data) {
			return errMalformed
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case ']':
			return nil
		default:
			return errMalformed
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the offset just past the string starting at data[i] ('"').
func skipString(data []byte, i int) (int, error) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errMalformed
}

// skipValue returns the offset just past the value starting at data[i].
func skipValue(data []byte, i int) (int, error) {
	if i >= len(data) {
		return 0, errMalformed
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, err := skipString(data, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errMalformed
	default:
		// A number, true, false or null: up to the next delimiter.
		j := i
		for j < len(data) && !isDelimiter(data[j]) {
			j++
		}
		if j == i {
			return 0, errMalformed
		}
		return j, nil
	}
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}
