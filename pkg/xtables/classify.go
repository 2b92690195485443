package xtables

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// What the xtables programs print, as captured from iptables 1.8.9 (nft and legacy)
// in a scratch network namespace:
//
//	iptables-nft-restore: line 2 failed: No chain/target/match by that name.
//	iptables-restore: line 2 failed                                      (legacy)
//	iptables-nft-restore v1.8.9 (nf_tables): Chain 'KUBE-SEP-X' does not exist
//	Error occurred at line: 4
//	iptables-restore v1.8.9 (legacy): Couldn't load target `KUBE-SEP-X':No such file or directory
//	Error occurred at line: 3
//	Another app is currently holding the xtables lock. Stopped waiting after 1s.   (exit status 4)
//	iptables: No chain/target/match by that name.                        (iptables -I/-X)
var (
	lineFailed       = regexp.MustCompile(`line (\d+) failed`)
	errorAtLine      = regexp.MustCompile(`Error occurred at line: (\d+)`)
	chainNotExist    = regexp.MustCompile(`Chain '([^']+)' does not exist`)
	targetNotLoaded  = regexp.MustCompile("Couldn't load target `([^']+)'")
	noChainByThatNam = "No chain/target/match by that name"
	lockHeld         = "holding the xtables lock"
)

// restoreError turns a failed iptables-restore into an *Error: the line it names
// with the payload around it, and the reason. runErr is the error of running it.
func restoreError(tool string, payload []byte, stderr string, runErr error) *Error {
	msg := trimUsage(stderr)
	line := 0
	for _, re := range []*regexp.Regexp{lineFailed, errorAtLine} {
		if m := re.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			break
		}
	}
	e := NewRestoreError(tool, payload, line, reasonFromMessage(msg), "", runErr)
	e.Message = msg
	if e.Reason == ReasonChainNotFound {
		e.Chain = missingChain(msg, e.LineText)
	}
	return e
}

// NewRestoreError returns the *Error for a restore of payload that failed at line
// (1-based, 0 when unknown) for reason, with the failing line, its table and the
// lines around it filled in. Exec and the fake in pkg/xtables/testing build theirs
// with it, so both read the same.
func NewRestoreError(op string, payload []byte, line int, reason Reason, chain Chain, err error) *Error {
	e := &Error{Op: op, Reason: reason, Chain: chain, Line: line, Err: err}
	if line > 0 {
		e.LineText, e.Table = payloadLine(payload, line)
		e.Context = linesAround(payload, line, 2)
	}
	return e
}

// commandError turns a failed single-rule or single-chain operation into an *Error.
func commandError(op string, table Table, chain Chain, err error) *Error {
	msg := strings.TrimSpace(err.Error())
	return &Error{Op: op, Table: table, Chain: chain, Reason: reasonFromMessage(msg), Err: err}
}

// reasonFromMessage classifies what an xtables program printed.
func reasonFromMessage(msg string) Reason {
	switch {
	case strings.Contains(msg, lockHeld):
		return ReasonLockTimeout
	case strings.Contains(msg, noChainByThatNam), chainNotExist.MatchString(msg):
		return ReasonChainNotFound
	case targetNotLoaded.MatchString(msg):
		// iptables cannot tell a jump to a missing chain from an unknown target
		// extension; the proxies jump to no extension it would fail to load.
		return ReasonChainNotFound
	}
	return ReasonOther
}

// missingChain names the chain a chain-not-found message is about: the one it quotes,
// or else the chain the failing "-A/-I/-D CHAIN" line writes to.
func missingChain(msg, line string) Chain {
	for _, re := range []*regexp.Regexp{chainNotExist, targetNotLoaded} {
		if m := re.FindStringSubmatch(msg); m != nil {
			return Chain(m[1])
		}
	}
	if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[0], "-") {
		return Chain(f[1])
	}
	return ""
}

// trimUsage drops the "Try `iptables-restore -h' ..." advice and blank lines.
func trimUsage(stderr string) string {
	var kept []string
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "Try `") {
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "\n")
}

// payloadLine returns line n (1-based) of payload and the table whose block holds it.
func payloadLine(payload []byte, n int) (string, Table) {
	var table Table
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for i := 1; sc.Scan(); i++ {
		line := sc.Text()
		if strings.HasPrefix(line, "*") {
			table = Table(line[1:])
		}
		if i == n {
			return line, table
		}
	}
	return "", ""
}

// linesAround quotes payload lines n-context..n+context (1-based), marking line n.
func linesAround(payload []byte, n, context int) string {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for i := 1; sc.Scan(); i++ {
		if i < n-context {
			continue
		}
		if i > n+context {
			break
		}
		mark := "   "
		if i == n {
			mark = ">> "
		}
		fmt.Fprintf(&b, "%s%d: %s\n", mark, i, sc.Text())
	}
	return b.String()
}
