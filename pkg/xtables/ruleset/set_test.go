package ruleset

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseSetMatch covers "-m set", which kube-proxy's IPVS mode uses to match its
// ipsets.
func TestParseSetMatch(t *testing.T) {
	tests := []struct {
		spec string
		want SetMatch
	}{
		{`-m comment --comment "cluster IPs" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
			SetMatch{Name: "KUBE-CLUSTER-IP", Flags: []string{"dst", "dst"}}},
		{`-p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j RETURN`, SetMatch{Name: "KUBE-NODE-PORT-TCP", Flags: []string{"dst"}}},
		{`-m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE`, SetMatch{Name: "KUBE-LOOP-BACK", Flags: []string{"dst", "dst", "src"}}},
		{`-m set ! --match-set KUBE-IPVS-IPS dst -j ACCEPT`, SetMatch{Name: "KUBE-IPVS-IPS", Flags: []string{"dst"}, Negate: true}},
		{`-m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT`, SetMatch{Name: "KUBE-IPVS-IPS", Flags: []string{"dst"}}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			r, err := ParseRule(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			var got *SetMatch
			for _, m := range r.Matches {
				if s, ok := m.(*SetMatch); ok {
					got = s
				}
			}
			if got == nil {
				t.Fatalf("no set match in %#v", r.Matches)
			}
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("set match (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSetMatchErrors(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr string
	}{
		{`-m set -j X`, `set match requires --match-set`},
		{`-m set --match-set KUBE-CLUSTER-IP -j X`, `bad flag "-j"`},
		{`-m set --match-set KUBE-CLUSTER-IP`, `requires a set name and flags`},
		{`-m set --match-set KUBE-CLUSTER-IP dst,dest -j X`, `bad flag "dest"`},
		{`-m set --match-set ` + strings.Repeat("S", 32) + ` dst -j X`, `invalid set name`},
		{`-m set --match-set A dst,dst,dst,dst,dst,dst,dst -j X`, `too many flags`},
		{`-m set --match-set A dst --match-set B dst -j X`, `given twice`},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := ParseRule(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseRule error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestApplySetMatchRoundTrip checks that a restore with set matches loads and saves
// back unchanged.
func TestApplySetMatchRoundTrip(t *testing.T) {
	rs := New(IPv4)
	payload := "*filter\n:KUBE-IPVS-FILTER - [0:0]\n" +
		"-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN\n" +
		"-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT\n" +
		"COMMIT\n"
	if err := rs.Apply([]byte(payload), true); err != nil {
		t.Fatal(err)
	}
	saved := string(rs.Save())
	for _, want := range []string{"-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN"} {
		if !strings.Contains(saved, want) {
			t.Errorf("save lacks %q:\n%s", want, saved)
		}
	}
}
