package xtables

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
)

var _ TableScanner = &Exec{}

// ScanTable implements TableScanner, reading iptables-save's output from a pipe.
func (e *Exec) ScanTable(ctx context.Context, table Table, line func([]byte) error) error {
	op := e.binary("-save") + " -t " + string(table)
	cmd := exec.CommandContext(ctx, e.binary("-save"), "-t", string(table))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	if err := cmd.Start(); err != nil {
		return &Error{Op: op, Err: err}
	}
	scanErr := scanLines(stdout, line)
	if scanErr != nil {
		// Stop reading: the program may block on a full pipe; Wait reaps it.
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if scanErr != nil {
		return scanErr
	}
	if waitErr != nil {
		return &Error{Op: op, Message: strings.TrimSpace(stderr.String()), Reason: reasonFromMessage(stderr.String()), Err: waitErr}
	}
	return nil
}

// scanLines calls line for each line of r, newline included.
func scanLines(r io.Reader, line func([]byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		text, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer (a rule with a huge comment): gather it.
			long := bytes.Clone(text)
			for errors.Is(err, bufio.ErrBufferFull) {
				text, err = br.ReadSlice('\n')
				long = append(long, text...)
			}
			text = long
		}
		if len(text) > 0 {
			if lineErr := line(text); lineErr != nil {
				return lineErr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
