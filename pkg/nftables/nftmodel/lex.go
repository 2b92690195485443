package nftmodel

import (
	"fmt"
	"strings"
)

// tokenKind tells words from quoted strings, punctuation and line ends.
type tokenKind int

const (
	tokWord tokenKind = iota
	tokString
	tokPunct
	tokNewline
)

// token is one lexical unit with the line it starts on, for error messages.
type token struct {
	kind tokenKind
	text string
	line int
}

func (t token) String() string {
	switch t.kind {
	case tokNewline:
		return "end of line"
	case tokString:
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// punctuation splits words even when written without spaces: nft prints
// "{ a, b }" and "priority filter;", and "@set" names a set.
const punctuation = "{},;@"

// lex splits nft text into tokens. Words are separated by blanks or
// punctuation; "#" starts a comment to the end of the line; a backslash at
// the end of a line continues it. A colon or dot inside a word stays there
// (IPv6 addresses, "10.0.0.1:80"): nft writes the map and concatenation
// operators with blanks around them.
func lex(text string) ([]token, error) {
	var tokens []token
	line := 1
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\n':
			tokens = append(tokens, token{tokNewline, "\n", line})
			line++
			i++
		case c == '\\' && i+1 < len(text) && text[i+1] == '\n':
			line++
			i += 2
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '"':
			end := strings.IndexByte(text[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			value := text[i+1 : i+1+end]
			if strings.Contains(value, "\n") {
				return nil, fmt.Errorf("line %d: string spans lines", line)
			}
			tokens = append(tokens, token{tokString, value, line})
			i += end + 2
		case strings.IndexByte(punctuation, c) >= 0:
			tokens = append(tokens, token{tokPunct, string(c), line})
			i++
		default:
			start := i
			for i < len(text) && !strings.ContainsRune(" \t\r\n\"#"+punctuation, rune(text[i])) {
				i++
			}
			tokens = append(tokens, token{tokWord, text[start:i], line})
		}
	}
	return tokens, nil
}

// cursor walks a token list.
type cursor struct {
	tokens []token
	pos    int
}

// peek returns the next token without consuming it; at the end it returns
// a newline.
func (c *cursor) peek() token { return c.peekAt(0) }

func (c *cursor) peekAt(n int) token {
	if c.pos+n >= len(c.tokens) {
		line := 0
		if len(c.tokens) > 0 {
			line = c.tokens[len(c.tokens)-1].line
		}
		return token{tokNewline, "\n", line}
	}
	return c.tokens[c.pos+n]
}

func (c *cursor) done() bool { return c.pos >= len(c.tokens) }

func (c *cursor) next() token {
	t := c.peek()
	if c.pos < len(c.tokens) {
		c.pos++
	}
	return t
}

// is reports whether the next token is a word or punctuation with text.
func (c *cursor) is(text string) bool {
	t := c.peek()
	return (t.kind == tokWord || t.kind == tokPunct) && t.text == text
}

// accept consumes the next token if it has text.
func (c *cursor) accept(text string) bool {
	if c.is(text) {
		c.pos++
		return true
	}
	return false
}

func (c *cursor) expect(text string) error {
	if !c.accept(text) {
		return c.errorf("want %q, got %s", text, c.peek())
	}
	return nil
}

// word consumes a word token.
func (c *cursor) word(what string) (string, error) {
	t := c.peek()
	if t.kind != tokWord {
		return "", c.errorf("want %s, got %s", what, t)
	}
	c.pos++
	return t.text, nil
}

// str consumes a quoted string.
func (c *cursor) str(what string) (string, error) {
	t := c.peek()
	if t.kind != tokString {
		return "", c.errorf("want %s (a quoted string), got %s", what, t)
	}
	c.pos++
	return t.text, nil
}

// skipNewlines consumes line ends.
func (c *cursor) skipNewlines() {
	for !c.done() && c.peek().kind == tokNewline {
		c.pos++
	}
}

// atEnd reports whether the statement ends here: a line end, ";" or "}".
func (c *cursor) atEnd() bool {
	t := c.peek()
	return t.kind == tokNewline || (t.kind == tokPunct && (t.text == ";" || t.text == "}"))
}

func (c *cursor) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", c.peek().line, fmt.Sprintf(format, args...))
}
