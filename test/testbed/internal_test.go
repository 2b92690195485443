package testbed

import (
	"errors"
	"testing"
)

// These run without root: the pure parts of the harness.

func TestOwnerID(t *testing.T) {
	for name, want := range map[string]string{
		"sy-a1b2c3-cp":       "a1b2c3",
		"sy-a1b2c3-n1p2":     "a1b2c3",
		"sy-a1b2c3-12345678": "a1b2c3",
		"sy-stale":           "stale",
	} {
		if got := ownerID(name); got != want {
			t.Errorf("ownerID(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestOurs checks which names Cleanup may take for a killed run's leftovers.
// mutation-checked: ours returning true for every "sy-" name (what listNetns did
// before) fails "sy-rst-123-v4nft", test/restore's namespace, whose iptables a
// concurrent testbed's Cleanup once killed in CI.
func TestOurs(t *testing.T) {
	for name, want := range map[string]bool{
		"sy-a1b2c3-cp":     true,
		"sy-a1b2c3":        true,
		"sy-dead00-cp":     true,
		"sy-rst-123-v4nft": false,
		"sy-A1B2C3-cp":     false,
		"sy-a1b2c":         false,
		"swct-123":         false,
	} {
		if got := ours(name); got != want {
			t.Errorf("ours(%q) = %v, want %v", name, got, want)
		}
	}
}

type fakeClient struct{}

func (fakeClient) clientNetns() (string, string) { return "sy-test", "/bin/false" }
func (fakeClient) String() string                { return "fake client" }

func TestDialResultFailureWrapsKind(t *testing.T) {
	cases := []struct {
		name   string
		result dialResult
		count  int
		want   error
	}{
		{"no failure", dialResult{Counts: map[string]int{"a": 1}}, 1, nil},
		{"refused", dialResult{Failures: map[string]int{"refused": 1}, FirstErrorKind: "refused", FirstError: "x"}, 1, ErrRefused},
		{"timeout of many", dialResult{Failures: map[string]int{"timeout": 2, "refused": 1}, FirstErrorKind: "timeout"}, 10, ErrTimeout},
		{"filtered", dialResult{Failures: map[string]int{"filtered": 1}, FirstErrorKind: "filtered"}, 1, ErrFiltered},
		{"unreachable", dialResult{Failures: map[string]int{"unreachable": 1}, FirstErrorKind: "unreachable"}, 1, ErrUnreachable},
		{"unknown kind", dialResult{Failures: map[string]int{"weird": 1}, FirstErrorKind: "weird"}, 1, ErrOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.result.failure(fakeClient{}, "tcp", "10.96.0.1:80", tc.count)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("failure() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("failure() = %v, want it to wrap %v", err, tc.want)
			}
		})
	}
}

func TestReplySourceIP(t *testing.T) {
	for source, want := range map[string]string{
		"10.244.1.2:3456":    "10.244.1.2",
		"[fd00:244:1::2]:80": "fd00:244:1::2",
		"garbage":            "garbage",
	} {
		if got := (Reply{Source: source}).SourceIP(); got != want {
			t.Errorf("SourceIP(%q) = %q, want %q", source, got, want)
		}
	}
}
