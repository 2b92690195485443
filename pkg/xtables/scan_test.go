package xtables

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScanLines checks the line reader ScanTable uses on iptables-save's pipe: every
// line with its newline, a last line without one, lines longer than its buffer, and
// an error from the callback stopping the scan.
//
// mutation-checked: dropping the ErrBufferFull gathering splits the long line in two.
func TestScanLines(t *testing.T) {
	long := "-A KUBE-SERVICES -m comment --comment \"" + strings.Repeat("x", 200<<10) + "\" -j ACCEPT\n"
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"empty", "", nil},
		{"lines", "*nat\n:A - [0:0]\nCOMMIT\n", []string{"*nat\n", ":A - [0:0]\n", "COMMIT\n"}},
		{"no final newline", "*nat\nCOMMIT", []string{"*nat\n", "COMMIT"}},
		{"long line", "*nat\n" + long + "COMMIT\n", []string{"*nat\n", long, "COMMIT\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			if err := scanLines(strings.NewReader(tc.input), func(line []byte) error {
				got = append(got, string(line))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	if err := scanLines(strings.NewReader("a\nb\nc\n"), func([]byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("got %v after %d lines, want %v after 1", err, n, stop)
	}
}
