package xtables

import (
	"errors"
	"fmt"
	"strings"
)

// Reason classifies an Error by what the caller can do about it.
type Reason int

const (
	// ReasonOther is any failure not classified below.
	ReasonOther Reason = iota
	// ReasonLockTimeout: another program held the xtables lock longer than the lock
	// wait (iptables' exit status 4, "Another app is currently holding the xtables
	// lock"). Nothing changed; retrying later can succeed (kubernetes#57428).
	ReasonLockTimeout
	// ReasonChainNotFound: a chain the operation names, or a restore line jumps to,
	// does not exist.
	ReasonChainNotFound
)

// String names the reason for logs.
func (r Reason) String() string {
	switch r {
	case ReasonLockTimeout:
		return "xtables lock timeout"
	case ReasonChainNotFound:
		return "chain not found"
	}
	return "other"
}

// Error is a failure of the kernel's iptables as Exec reports it, and as the strict
// fake in pkg/xtables/testing reports the same faults. Use errors.As to read it, or
// the predicates IsLockTimeout, IsNotFound and FailedLine.
type Error struct {
	// Op is the program or operation that failed, e.g. "iptables-nft-restore" or
	// "ensure rule".
	Op string
	// Reason classifies the failure.
	Reason Reason
	// Table and Chain name the chain an operation was about, when known.
	Table Table
	Chain Chain
	// Line is the 1-based line of the restore payload that iptables-restore
	// reported as failing, 0 when it reported none.
	Line int
	// LineText is that line of the payload.
	LineText string
	// Message is what the program said (its standard error), trimmed.
	Message string
	// Context quotes the payload lines around Line, the failing one marked ">>".
	Context string
	// Err is the underlying error (an *exec.ExitError, a ruleset error, ...).
	Err error
}

// Error reads "OP: line N failed: LINE: MESSAGE: ERR", with the parts that are known,
// followed by the quoted payload lines.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Chain != "" && e.Line == 0 {
		fmt.Fprintf(&b, " %s/%s", e.Table, e.Chain)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d failed", e.Line)
		if e.LineText != "" {
			fmt.Fprintf(&b, ": %s", e.LineText)
		}
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Message != "" && (e.Err == nil || !strings.Contains(e.Err.Error(), e.Message)) {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Context != "" {
		b.WriteString("\n")
		b.WriteString(strings.TrimRight(e.Context, "\n"))
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func reasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonOther
}

// IsLockTimeout reports whether err is, or wraps, an Error with ReasonLockTimeout.
func IsLockTimeout(err error) bool { return reasonOf(err) == ReasonLockTimeout }

// IsNotFound reports whether err is, or wraps, an Error with ReasonChainNotFound.
func IsNotFound(err error) bool { return reasonOf(err) == ReasonChainNotFound }

// FailedLine returns the payload line a restore failed at, if err is, or wraps, an
// Error that names one.
func FailedLine(err error) (line int, text string, ok bool) {
	var e *Error
	if errors.As(err, &e) && e.Line > 0 {
		return e.Line, e.LineText, true
	}
	return 0, "", false
}
