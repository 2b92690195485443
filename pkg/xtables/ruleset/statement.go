package ruleset

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Op is the kind of a restore statement.
type Op int

const (
	// OpTable is "*table": the start of a table block.
	OpTable Op = iota
	// OpDeclare is ":CHAIN POLICY [pkts:bytes]". With --noflush it creates
	// a missing user chain and flushes an existing one; kube-proxy relies on
	// this to rewrite a chain without deleting it.
	OpDeclare
	// OpAppend is "-A CHAIN rule".
	OpAppend
	// OpInsert is "-I CHAIN [N] rule" (N is 1-based, default 1).
	OpInsert
	// OpDelete is "-D CHAIN rule" or "-D CHAIN N".
	OpDelete
	// OpFlush is "-F [CHAIN]" (all chains of the table without CHAIN).
	OpFlush
	// OpNewChain is "-N CHAIN".
	OpNewChain
	// OpDeleteChain is "-X [CHAIN]" (every user chain without CHAIN).
	OpDeleteChain
	// OpCommit is "COMMIT": the end of a table block.
	OpCommit
)

var opNames = [...]string{"*table", ":chain", "-A", "-I", "-D", "-F", "-N", "-X", "COMMIT"}

// String returns the restore syntax of the operation.
func (op Op) String() string {
	if int(op) < len(opNames) {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// Statement is one line of a restore payload.
type Statement struct {
	// Line is the 1-based line number in the payload.
	Line int
	// Text is the line as written, for error messages.
	Text string
	Op   Op
	// Table is the table of the enclosing block.
	Table string
	// Chain is the chain operated on ("" for -F and -X of a whole table).
	Chain string
	// Policy is a declaration's policy: "-" for user chains, ACCEPT or DROP
	// for built-in ones.
	Policy string
	// Position is -I's insert position or -D's rule number (1-based, 0
	// when -D names a rule by specification).
	Position int
	// Rule is the rule of -A, -I and -D by specification.
	Rule *Rule
}

// LineError is an error tied to a line of a restore payload, so test failures
// point straight at the offending rule.
type LineError struct {
	Line int
	// Text is the line as written.
	Text string
	Err  error
}

// Error implements error.
func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %v: %q", e.Line, e.Err, e.Text)
}

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// ChainNotFoundError is the error for a statement that names a chain the table does
// not hold: a rule added to it, or a jump to it.
type ChainNotFoundError struct {
	Table, Chain string
	// Jump is true when a rule jumps (or goes) to the missing chain.
	Jump bool
}

// Error implements error.
func (e *ChainNotFoundError) Error() string {
	if e.Jump {
		return fmt.Sprintf("jump to missing chain %s in table %s", e.Chain, e.Table)
	}
	return fmt.Sprintf("chain %s does not exist in table %s", e.Chain, e.Table)
}

// Parse parses an iptables-restore payload into statements. It checks the
// payload's structure (table blocks, COMMIT, declarations) and every rule's
// syntax, but not whether chains exist; that is Apply's job.
func Parse(payload []byte) ([]Statement, error) {
	var (
		stmts   []Statement
		table   string
		lineNum int
		opened  int
	)
	scanner := bufio.NewScanner(bytes.NewReader(payload))
	scanner.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for scanner.Scan() {
		lineNum++
		text := scanner.Text()
		line := strings.TrimSpace(text)
		if line == "" || line[0] == '#' {
			continue
		}
		fail := func(err error) ([]Statement, error) {
			return nil, &LineError{Line: lineNum, Text: text, Err: err}
		}
		switch {
		case line[0] == '*':
			if table != "" {
				return fail(fmt.Errorf("table %q started before COMMIT of table %q", line[1:], table))
			}
			name := line[1:]
			if _, ok := builtinChains[name]; !ok {
				return fail(fmt.Errorf("unknown table %q", name))
			}
			table, opened = name, lineNum
			stmts = append(stmts, Statement{Line: lineNum, Text: text, Op: OpTable, Table: table})
			continue
		case table == "":
			return fail(fmt.Errorf("statement outside a table block"))
		case line == "COMMIT":
			stmts = append(stmts, Statement{Line: lineNum, Text: text, Op: OpCommit, Table: table})
			table = ""
			continue
		case line[0] == ':':
			st, err := parseDeclaration(table, line[1:])
			if err != nil {
				return fail(err)
			}
			st.Line, st.Text = lineNum, text
			stmts = append(stmts, st)
			continue
		}
		st, err := parseCommand(table, line)
		if err != nil {
			return fail(err)
		}
		st.Line, st.Text = lineNum, text
		stmts = append(stmts, st)
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	if table != "" {
		return nil, &LineError{Line: opened, Text: "*" + table, Err: fmt.Errorf("table %q has no COMMIT", table)}
	}
	return stmts, nil
}

func parseDeclaration(table, decl string) (Statement, error) {
	fields := strings.Fields(decl)
	if len(fields) < 2 || len(fields) > 3 {
		return Statement{}, fmt.Errorf("bad chain declaration")
	}
	name, policy := fields[0], fields[1]
	if err := checkChainName(name); err != nil {
		return Statement{}, err
	}
	if len(fields) == 3 {
		if _, _, err := parseCounters(fields[2]); err != nil {
			return Statement{}, err
		}
	}
	if IsBuiltinChain(table, name) {
		if policy != "ACCEPT" && policy != "DROP" && policy != "-" {
			return Statement{}, fmt.Errorf("bad policy %q for built-in chain %s", policy, name)
		}
	} else if policy != "-" {
		return Statement{}, fmt.Errorf("can't set policy %q on user-defined chain %s", policy, name)
	}
	return Statement{Op: OpDeclare, Table: table, Chain: name, Policy: policy}, nil
}

// parseCounters parses "[pkts:bytes]".
func parseCounters(s string) (uint64, uint64, error) {
	inner, ok := strings.CutPrefix(s, "[")
	if inner, ok = strings.CutSuffix(inner, "]"); !ok {
		return 0, 0, fmt.Errorf("bad counters %q", s)
	}
	p, b, ok := strings.Cut(inner, ":")
	pkts, err1 := strconv.ParseUint(p, 10, 64)
	bytes, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad counters %q", s)
	}
	return pkts, bytes, nil
}

var commandOps = map[string]Op{
	"-A": OpAppend, "--append": OpAppend,
	"-I": OpInsert, "--insert": OpInsert,
	"-D": OpDelete, "--delete": OpDelete,
	"-F": OpFlush, "--flush": OpFlush,
	"-N": OpNewChain, "--new-chain": OpNewChain,
	"-X": OpDeleteChain, "--delete-chain": OpDeleteChain,
}

func parseCommand(table, line string) (Statement, error) {
	// iptables-restore --counters accepts "[pkts:bytes] -A ..."; the
	// counters are not modelled.
	if strings.HasPrefix(line, "[") {
		counters, rest, _ := strings.Cut(line, " ")
		if _, _, err := parseCounters(counters); err != nil {
			return Statement{}, err
		}
		line = strings.TrimSpace(rest)
	}
	cmd, rest, _ := strings.Cut(line, " ")
	op, ok := commandOps[cmd]
	if !ok {
		return Statement{}, fmt.Errorf("unknown command %q", cmd)
	}
	st := Statement{Op: op, Table: table}
	rest = strings.TrimSpace(rest)
	chain, spec, _ := strings.Cut(rest, " ")
	spec = strings.TrimSpace(spec)
	if chain == "" {
		if op == OpFlush || op == OpDeleteChain {
			return st, nil
		}
		return Statement{}, fmt.Errorf("%s requires a chain", cmd)
	}
	if err := checkChainName(chain); err != nil {
		return Statement{}, err
	}
	st.Chain = chain
	switch op {
	case OpFlush, OpNewChain, OpDeleteChain:
		if spec != "" {
			return Statement{}, fmt.Errorf("unexpected arguments after %s %s", cmd, chain)
		}
		return st, nil
	case OpInsert:
		if pos, after, _ := strings.Cut(spec, " "); pos != "" && pos[0] >= '0' && pos[0] <= '9' {
			n, err := strconv.Atoi(pos)
			if err != nil || n < 1 {
				return Statement{}, fmt.Errorf("bad rule number %q", pos)
			}
			st.Position, spec = n, strings.TrimSpace(after)
		} else {
			st.Position = 1
		}
	case OpDelete:
		if spec != "" && spec[0] >= '0' && spec[0] <= '9' {
			n, err := strconv.Atoi(spec)
			if err != nil || n < 1 {
				return Statement{}, fmt.Errorf("bad rule number %q", spec)
			}
			st.Position = n
			return st, nil
		}
		if spec == "" {
			return Statement{}, fmt.Errorf("-D requires a rule or a rule number")
		}
	}
	rule, err := ParseRule(spec)
	if err != nil {
		return Statement{}, err
	}
	st.Rule = rule
	return st, nil
}
