package ruleset

import (
	"fmt"
	"strings"
)

// splitArgs splits one restore line into arguments the way iptables-restore's
// add_param_to_argv does: whitespace separates arguments, a double quote opens
// or closes a quoted stretch (which may contain whitespace), and inside quotes
// a backslash escapes the next character. This is why kube-proxy quotes
// comments with spaces but may leave "ns/svc:port" bare.
func splitArgs(line string) ([]string, error) {
	var (
		args    []string
		current strings.Builder
		inArg   bool
		quoted  bool
		escaped bool
	)
	for _, ch := range line {
		switch {
		case escaped:
			current.WriteRune(ch)
			escaped = false
		case quoted && ch == '\\':
			escaped = true
		case ch == '"':
			quoted = !quoted
			inArg = true
		case !quoted && (ch == ' ' || ch == '\t'):
			if inArg {
				args = append(args, current.String())
				current.Reset()
				inArg = false
			}
		default:
			current.WriteRune(ch)
			inArg = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inArg {
		args = append(args, current.String())
	}
	return args, nil
}

// quoteArg renders one argument so that splitArgs reads it back unchanged,
// quoting only when needed, as iptables-save does for comments.
func quoteArg(arg string) string {
	if arg != "" && !strings.ContainsAny(arg, " \t\"\\") {
		return arg
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, ch := range arg {
		if ch == '"' || ch == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(ch)
	}
	b.WriteByte('"')
	return b.String()
}

// joinArgs is the inverse of splitArgs.
func joinArgs(args []string) string {
	quoted := make([]string, len(args))
	for i, arg := range args {
		quoted[i] = quoteArg(arg)
	}
	return strings.Join(quoted, " ")
}

// FormatArgs joins arguments into one rule specification, quoting those that
// need it the way iptables-save does, so ParseRule reads them back unchanged.
func FormatArgs(args []string) string { return joinArgs(args) }

// SplitArgs splits one restore line into arguments as iptables-restore does (see
// splitArgs); FormatArgs is its inverse.
func SplitArgs(line string) ([]string, error) { return splitArgs(line) }
