package xtables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// The payloads and stderr below were captured from iptables 1.8.9 run as root in a
// scratch network namespace (unshare -n; for the lock, a private /run with the lock
// file held by flock).
const (
	missingTargetPayload = "*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-MISSING\nCOMMIT\n"
	missingChainPayload  = "*nat\n-A KUBE-NOPE -j RETURN\nCOMMIT\n"
	badMatchPayload      = "*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -m tpc -j RETURN\nCOMMIT\n"
)

// restoreCase is one captured failure of iptables-restore and what Exec must make of it.
type restoreCase struct {
	name     string
	backend  Backend
	payload  string
	stderr   string
	exitCode int
	want     Error // Op, Err and Context are checked separately
}

var restoreCases = []restoreCase{
	{
		name: "nft: jump to a missing chain", backend: BackendNFT, payload: missingTargetPayload, exitCode: 2,
		stderr: "iptables-nft-restore v1.8.9 (nf_tables): Chain 'KUBE-SEP-MISSING' does not exist\nError occurred at line: 4\nTry `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.\n",
		want: Error{Reason: ReasonChainNotFound, Table: TableNAT, Chain: "KUBE-SEP-MISSING", Line: 4, LineText: "COMMIT",
			Message: "iptables-nft-restore v1.8.9 (nf_tables): Chain 'KUBE-SEP-MISSING' does not exist\nError occurred at line: 4"},
	},
	{
		name: "legacy: jump to a missing chain", backend: BackendLegacy, payload: missingTargetPayload, exitCode: 2,
		stderr: "iptables-restore v1.8.9 (legacy): Couldn't load target `KUBE-SEP-MISSING':No such file or directory\n\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
		want: Error{Reason: ReasonChainNotFound, Table: TableNAT, Chain: "KUBE-SEP-MISSING", Line: 3, LineText: "-A KUBE-SVC-A -j KUBE-SEP-MISSING",
			Message: "iptables-restore v1.8.9 (legacy): Couldn't load target `KUBE-SEP-MISSING':No such file or directory\nError occurred at line: 3"},
	},
	{
		name: "nft: append to a missing chain", backend: BackendNFT, payload: missingChainPayload, exitCode: 1,
		stderr: "iptables-nft-restore: line 2 failed: No chain/target/match by that name.\n",
		want: Error{Reason: ReasonChainNotFound, Table: TableNAT, Chain: "KUBE-NOPE", Line: 2, LineText: "-A KUBE-NOPE -j RETURN",
			Message: "iptables-nft-restore: line 2 failed: No chain/target/match by that name."},
	},
	{
		name: "legacy: append to a missing chain says only the line", backend: BackendLegacy, payload: missingChainPayload, exitCode: 1,
		stderr: "iptables-restore: line 2 failed\n",
		want:   Error{Reason: ReasonOther, Table: TableNAT, Line: 2, LineText: "-A KUBE-NOPE -j RETURN", Message: "iptables-restore: line 2 failed"},
	},
	{
		name: "nft: unknown match", backend: BackendNFT, payload: badMatchPayload, exitCode: 2,
		stderr: "iptables-nft-restore v1.8.9 (nf_tables): Couldn't load match `tpc':No such file or directory\n\nError occurred at line: 3\nTry `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.\n",
		want: Error{Reason: ReasonOther, Table: TableNAT, Line: 3, LineText: "-A KUBE-SVC-A -m tpc -j RETURN",
			Message: "iptables-nft-restore v1.8.9 (nf_tables): Couldn't load match `tpc':No such file or directory\nError occurred at line: 3"},
	},
	{
		name: "legacy: lock held by another program", backend: BackendLegacy, payload: missingChainPayload, exitCode: 4,
		stderr: "Can't lock /run/xtables.lock: Resource temporarily unavailable\nAnother app is currently holding the xtables lock. Stopped waiting after 1s.\n",
		want: Error{Reason: ReasonLockTimeout,
			Message: "Can't lock /run/xtables.lock: Resource temporarily unavailable\nAnother app is currently holding the xtables lock. Stopped waiting after 1s."},
	},
}

// TestExecRestoreErrors runs the real Exec.Restore against a stand-in
// iptables-restore (a script on PATH that prints the captured stderr and exits with
// the captured status) and checks the *Error it returns and the predicates.
func TestExecRestoreErrors(t *testing.T) {
	for _, tc := range restoreCases {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			e := &Exec{family: v1.IPv4Protocol, backend: tc.backend, lockWait: time.Second}
			tool := e.binary("-restore")
			script := fmt.Sprintf("#!/bin/sh\nwhile read -r _; do :; done\nprintf '%%s' '%s' >&2\nexit %d\n", strings.ReplaceAll(tc.stderr, "'", `'"'"'`), tc.exitCode)
			if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", bin)

			err := e.Restore(context.Background(), []byte(tc.payload))
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("Restore = %v (%T), want an *Error", err, err)
			}
			if got.Op != tool {
				t.Errorf("Op = %q, want %q", got.Op, tool)
			}
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != tc.exitCode {
				t.Errorf("error does not wrap the exit status %d: %v", tc.exitCode, err)
			}
			checkError(t, err, got, tc.want)
			if tc.want.Line > 0 && !strings.Contains(err.Error(), fmt.Sprintf(">> %d: %s", tc.want.Line, tc.want.LineText)) {
				t.Errorf("message does not quote the failing line:\n%v", err)
			}
		})
	}
}

// checkError compares the classified fields and the predicates with want.
func checkError(t *testing.T, err error, got *Error, want Error) {
	t.Helper()
	type fields struct {
		Reason      Reason
		Table       Table
		Chain       Chain
		Line        int
		LineText    string
		Message     string
		LockTimeout bool
		NotFound    bool
	}
	line, _, _ := FailedLine(err)
	have := fields{got.Reason, got.Table, got.Chain, line, got.LineText, got.Message, IsLockTimeout(err), IsNotFound(err)}
	wantFields := fields{want.Reason, want.Table, want.Chain, want.Line, want.LineText, want.Message,
		want.Reason == ReasonLockTimeout, want.Reason == ReasonChainNotFound}
	if diff := cmp.Diff(wantFields, have); diff != "" {
		t.Errorf("classified error (-want +got):\n%s\nerror: %v", diff, err)
	}
	// Wrapping keeps the classification.
	wrapped := fmt.Errorf("applying: %w", err)
	if IsLockTimeout(wrapped) != wantFields.LockTimeout || IsNotFound(wrapped) != wantFields.NotFound {
		t.Errorf("predicates differ on a wrapped error")
	}
}

// TestCommandErrors classifies the single-rule operations' failures as
// go-iptables reports them (its message quotes the program's stderr).
func TestCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		want Reason
	}{
		{"insert into a missing chain", "running [/usr/sbin/iptables-nft -t nat -I KUBE-NOPE 1 -j RETURN --wait 5]: exit status 1: iptables: No chain/target/match by that name.\n", ReasonChainNotFound},
		{"lock held", "running [/usr/sbin/iptables-legacy -t nat -N KUBE-Y --wait 1]: exit status 4: Another app is currently holding the xtables lock. Stopped waiting after 1s.\n", ReasonLockTimeout},
		{"anything else", "running [/usr/sbin/iptables-nft -t nat -N KUBE-Y --wait 1]: exit status 3: iptables v1.8.9 (nf_tables): can't initialize iptables table `nat': Permission denied\n", ReasonOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cause := errors.New(tc.msg)
			err := commandError("ensuring rule in", TableNAT, "KUBE-NOPE", cause)
			checkError(t, err, err, Error{Reason: tc.want, Table: TableNAT, Chain: "KUBE-NOPE"})
			if !errors.Is(err, cause) || !strings.HasPrefix(err.Error(), "ensuring rule in nat/KUBE-NOPE: running") {
				t.Errorf("error = %q, want the operation, the chain and the cause", err)
			}
		})
	}
}
