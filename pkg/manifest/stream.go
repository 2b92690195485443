package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// streamMinBytes is the size from which ReadEach reads a file that is one JSON List
// in two streaming passes instead of holding it: the first checks its syntax, as
// json.Valid would, and keeps all but the items; the second reads the items one by
// one into the decoders. At 10k Services × 10 endpoints the file was 19 MB of a
// 50 MB live heap while reading. A variable so that tests can stream small files.
var streamMinBytes int64 = 1 << 20

// streamBufferBytes is the streaming passes' initial buffer; it grows to hold the
// longest item. A variable so that tests can make every item outgrow it.
var streamBufferBytes = 256 << 10

// streamFile reads path, if it is a regular file of at least streamMinBytes holding
// exactly one JSON object that is a List, the way decodeFile would read it from
// memory: the same objects, problems and sources. It reports false, having filed
// nothing, for anything else (or any surprise, such as a syntax error), which the
// caller then reads from memory, so that every message stays decodeFile's own.
func (r *reader) streamFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() || info.Size() < streamMinBytes {
		return false
	}
	list, ok := indexList(f)
	if !ok {
		return false
	}
	// The List as decodeFile would see it, with an empty items member: whether it
	// is a List, of what, and the problems with it are decided exactly as there.
	d := decodeOne(Source{File: path, Document: 1, Line: list.line}, list.skeleton, schema.GroupVersionKind{})
	if !d.list || len(d.problems) > 0 || string(d.items) != "[]" {
		return false
	}
	if _, err := f.Seek(list.itemsAt, io.SeekStart); err != nil {
		return false
	}
	var itemGVK schema.GroupVersionKind
	if d.listGVK.Kind != "List" {
		itemGVK = d.listGVK.GroupVersion().WithKind(strings.TrimSuffix(d.listGVK.Kind, "List"))
	}
	s := &streamScanner{r: f, buf: make([]byte, 0, streamBufferBytes)}
	var walkErr error
	elements := func(yield func([]byte) bool) {
		walkErr = s.eachElement(func(item []byte) bool { return yield(item) })
	}
	r.decodeItems(d.src, elements, list.count, true, itemGVK)
	if walkErr != nil {
		// The file changed between the passes.
		r.fail(d.src, errors.Join(errors.New("decoding items: the file changed while it was read"), walkErr))
	}
	return true
}

// listIndex is what the first pass over a streamed List keeps.
type listIndex struct {
	// line is the line the List starts on.
	line int
	// skeleton is the List's text with its items member's value replaced by [].
	skeleton []byte
	// itemsAt is the offset of the items array's '['; count is its length.
	itemsAt int64
	count   int
}

// indexList checks that r holds exactly one JSON object, with an items member that is
// an array, and nothing else but white space, and returns its index. It checks the
// syntax as json.Valid would over the whole text: the structure of the object and of
// the array here, and every key, member value and element with json.Valid.
func indexList(r io.Reader) (listIndex, bool) {
	s := &streamScanner{r: r, buf: make([]byte, 0, streamBufferBytes)}
	list := listIndex{line: 1, itemsAt: -1}
	for {
		c, ok := s.peek()
		if !ok {
			return list, false
		}
		if !isSpace(c) {
			break
		}
		if c == '\n' {
			list.line++
		}
		s.pos++
	}
	if c, _ := s.next(); c != '{' {
		return list, false
	}
	skeleton := []byte{'{'}
	for {
		s.skipSpace()
		if c, ok := s.peek(); !ok || c != '"' {
			return list, false // also an empty object: not a List
		}
		key, err := s.value()
		if err != nil || !json.Valid(key) {
			return list, false
		}
		isItems := string(key) == `"items"`
		if !isItems && bytes.EqualFold(key, []byte(`"items"`)) {
			return list, false // decodeFile's case-insensitive match: leave it to it
		}
		skeleton = append(skeleton, key...)
		s.skipSpace()
		if c, ok := s.next(); !ok || c != ':' {
			return list, false
		}
		skeleton = append(skeleton, ':')
		s.skipSpace()
		if isItems {
			if c, ok := s.peek(); !ok || c != '[' || list.itemsAt >= 0 {
				return list, false
			}
			list.itemsAt = s.offset()
			err := s.eachElement(func(item []byte) bool {
				list.count++
				return json.Valid(item)
			})
			if err != nil {
				return list, false
			}
			skeleton = append(skeleton, "[]"...)
		} else {
			value, err := s.value()
			if err != nil || !json.Valid(value) {
				return list, false
			}
			skeleton = append(skeleton, value...)
		}
		s.skipSpace()
		c, ok := s.next()
		if !ok {
			return list, false
		}
		if c == '}' {
			break
		}
		if c != ',' {
			return list, false
		}
		skeleton = append(skeleton, ',')
	}
	skeleton = append(skeleton, '}')
	s.skipSpace()
	if _, more := s.peek(); more || s.err != io.EOF || list.itemsAt < 0 {
		return list, false
	}
	list.skeleton = skeleton
	return list, true
}

// errStopped is eachElement's error when visit stopped the walk.
var errStopped = errors.New("stopped")

// streamScanner walks JSON text read from r, as skipSpace, skipValue and eachElement
// walk text in memory, holding only the value at hand.
type streamScanner struct {
	r io.Reader
	// buf holds the text read and not yet dropped; buf[pos:] is still to be walked.
	buf []byte
	pos int
	// dropped counts the bytes dropped from buf's front, for offset.
	dropped int64
	// err is the reader's error once it has returned one (io.EOF at the end).
	err error
}

// offset returns the offset in r of the next byte to walk.
func (s *streamScanner) offset() int64 { return s.dropped + int64(s.pos) }

// at returns the byte k bytes ahead of pos, reading more as needed; false at the end.
func (s *streamScanner) at(k int) (byte, bool) {
	if !s.ensure(k) {
		return 0, false
	}
	return s.buf[s.pos+k], true
}

// more reads from r into buf, first dropping what has been walked and growing buf
// when the value at hand fills it. It reports false at the end of r or on an error.
func (s *streamScanner) more() bool {
	if s.err != nil {
		return false
	}
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:])
		s.dropped += int64(s.pos)
		s.buf, s.pos = s.buf[:n], 0
	}
	if len(s.buf) == cap(s.buf) {
		s.buf = append(s.buf, make([]byte, cap(s.buf)+1)...)[:len(s.buf)]
	}
	n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+n]
	if err != nil {
		s.err = err
		return n > 0
	}
	return true
}

func (s *streamScanner) peek() (byte, bool) { return s.at(0) }

func (s *streamScanner) next() (byte, bool) {
	c, ok := s.at(0)
	if ok {
		s.pos++
	}
	return c, ok
}

func (s *streamScanner) skipSpace() {
	for {
		c, ok := s.at(0)
		if !ok || !isSpace(c) {
			return
		}
		s.pos++
	}
}

// value returns the text of the value at pos, as skipValue delimits it, and moves
// past it. The text is valid until the scanner is next used.
func (s *streamScanner) value() ([]byte, error) {
	end, err := s.valueEnd()
	if err != nil {
		return nil, err
	}
	value := s.buf[s.pos : s.pos+end]
	s.pos += end
	return value, nil
}

// valueEnd is skipValue: the length of the value at pos. It walks buf directly, and
// strings with bytes.IndexByte, since it sees every byte of a big List twice.
func (s *streamScanner) valueEnd() (int, error) {
	if !s.ensure(0) {
		return 0, errMalformed
	}
	switch s.buf[s.pos] {
	case '"':
		return s.stringEnd(0)
	case '{', '[':
		depth := 0
		for k := 0; ; k++ {
			if s.pos+k >= len(s.buf) && !s.ensure(k) {
				return 0, errMalformed
			}
			switch s.buf[s.pos+k] {
			case '"':
				end, err := s.stringEnd(k)
				if err != nil {
					return 0, err
				}
				k = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return k + 1, nil
				}
			}
		}
	default:
		k := 0
		for s.ensure(k) && !isDelimiter(s.buf[s.pos+k]) {
			k++
		}
		if k == 0 {
			return 0, errMalformed
		}
		return k, nil
	}
}

// ensure reads until buf holds the byte k bytes ahead of pos; false at the end.
func (s *streamScanner) ensure(k int) bool {
	for s.pos+k >= len(s.buf) {
		if !s.more() {
			return false
		}
	}
	return true
}

// stringEnd is skipString: the end of the string starting k bytes ahead. As there,
// a backslash escapes the byte after it.
func (s *streamScanner) stringEnd(k int) (int, error) {
	j := k + 1
	for {
		if !s.ensure(j) {
			return 0, errMalformed
		}
		rest := s.buf[s.pos+j:]
		quote := bytes.IndexByte(rest, '"')
		upTo := rest
		if quote >= 0 {
			upTo = rest[:quote]
		}
		if escape := bytes.IndexByte(upTo, '\\'); escape >= 0 {
			j += escape + 2
			continue
		}
		if quote >= 0 {
			return j + quote + 1, nil
		}
		j += len(rest)
	}
}

// eachElement is eachElement over the array at pos: it calls visit with each
// element's text (valid until visit returns) and moves past the array. It stops
// with errStopped when visit returns false.
func (s *streamScanner) eachElement(visit func(element []byte) bool) error {
	if c, ok := s.next(); !ok || c != '[' {
		return errMalformed
	}
	s.skipSpace()
	if c, ok := s.peek(); ok && c == ']' {
		s.pos++
		return nil
	}
	for {
		element, err := s.value()
		if err != nil {
			return err
		}
		if !visit(element) {
			return errStopped
		}
		s.skipSpace()
		c, ok := s.next()
		if !ok {
			return errMalformed
		}
		switch c {
		case ',':
			s.skipSpace()
		case ']':
			return nil
		default:
			return errMalformed
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
