package ruleset

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// IP plan for these tests: pod CIDR 10.0.0.0/8, service CIDR 172.30.0.0/16,
// endpoints 10.180.0.0/16; IPv6 endpoints in fd00::/64.

// baseNAT is a minimal kube-proxy-shaped nat table.
const baseNAT = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-A1 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.180.0.1:80" -j KUBE-SEP-A1
-A KUBE-SEP-A1 -m comment --comment ns/a:p -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-A1 -m comment --comment ns/a:p -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
COMMIT
`

const baseNATSaved = `*nat
:PREROUTING ACCEPT
:INPUT ACCEPT
:OUTPUT ACCEPT
:POSTROUTING ACCEPT
:KUBE-MARK-MASQ -
:KUBE-SEP-A1 -
:KUBE-SERVICES -
:KUBE-SVC-A -
-A PREROUTING -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SEP-A1 -m comment --comment ns/a:p -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-A1 -m comment --comment ns/a:p -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.180.0.1:80" -j KUBE-SEP-A1
COMMIT
`

type applyStep struct {
	payload string
	noflush bool
	// wantErr is a substring of the expected error; "" means success.
	wantErr string
}

func TestApply(t *testing.T) {
	tests := []struct {
		name  string
		steps []applyStep
		// want is the Save text after all steps.
		want string
	}{{
		name:  "save order: built-ins first, user chains sorted",
		steps: []applyStep{{payload: baseNAT, noflush: true}},
		want:  baseNATSaved,
	}, {
		name: "noflush declaration flushes an existing chain and keeps undeclared ones",
		steps: []applyStep{
			{payload: baseNAT, noflush: true},
			{payload: "*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-A2 - [0:0]\n-A KUBE-SEP-A2 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80\n-A KUBE-SVC-A -j KUBE-SEP-A2\n-X KUBE-SEP-A1\nCOMMIT\n", noflush: true,
				wantErr: "cannot delete chain KUBE-SEP-A1: it has 2 rules"},
			{payload: "*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-A1 - [0:0]\n:KUBE-SEP-A2 - [0:0]\n-A KUBE-SEP-A2 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80\n-A KUBE-SVC-A -j KUBE-SEP-A2\n-X KUBE-SEP-A1\nCOMMIT\n", noflush: true},
		},
		want: `*nat
:PREROUTING ACCEPT
:INPUT ACCEPT
:OUTPUT ACCEPT
:POSTROUTING ACCEPT
:KUBE-MARK-MASQ -
:KUBE-SEP-A2 -
:KUBE-SERVICES -
:KUBE-SVC-A -
-A PREROUTING -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SEP-A2 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -j KUBE-SEP-A2
COMMIT
`,
	}, {
		name: "without noflush the table is replaced wholesale, other tables kept",
		steps: []applyStep{
			{payload: baseNAT + "*filter\n:KUBE-FORWARD - [0:0]\n-A FORWARD -j KUBE-FORWARD\nCOMMIT\n", noflush: true},
			{payload: "*nat\n:KUBE-POSTROUTING - [0:0]\n-A POSTROUTING -j KUBE-POSTROUTING\nCOMMIT\n"},
		},
		want: `*filter
:INPUT ACCEPT
:FORWARD ACCEPT
:OUTPUT ACCEPT
:KUBE-FORWARD -
-A FORWARD -j KUBE-FORWARD
COMMIT
*nat
:PREROUTING ACCEPT
:INPUT ACCEPT
:OUTPUT ACCEPT
:POSTROUTING ACCEPT
:KUBE-POSTROUTING -
-A POSTROUTING -j KUBE-POSTROUTING
COMMIT
`,
	}, {
		name: "failure is atomic across tables",
		steps: []applyStep{
			{payload: baseNAT, noflush: true},
			{payload: "*filter\n:KUBE-FORWARD - [0:0]\nCOMMIT\n*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-GONE\nCOMMIT\n", noflush: true,
				wantErr: "line 6: jump to missing chain KUBE-SEP-GONE in table nat"},
		},
		want: baseNATSaved,
	}, {
		name: "jump target must be declared before use",
		steps: []applyStep{
			{payload: "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j KUBE-B\n:KUBE-B - [0:0]\nCOMMIT\n", noflush: true,
				wantErr: "line 3: jump to missing chain KUBE-B"},
		},
	}, {
		name: "-X of a referenced chain fails",
		steps: []applyStep{
			{payload: baseNAT, noflush: true},
			{payload: "*nat\n:KUBE-SEP-A1 - [0:0]\n-X KUBE-SEP-A1\nCOMMIT\n", noflush: true,
				wantErr: "cannot delete chain KUBE-SEP-A1: still referenced from [KUBE-SVC-A]"},
		},
		want: baseNATSaved,
	}, {
		name: "-X of built-in and missing chains fails",
		steps: []applyStep{
			{payload: "*nat\n-X PREROUTING\nCOMMIT\n", noflush: true, wantErr: "cannot delete built-in chain"},
			{payload: "*nat\n-X KUBE-NOPE\nCOMMIT\n", noflush: true, wantErr: "chain KUBE-NOPE does not exist"},
		},
	}, {
		name: "rules need an existing chain",
		steps: []applyStep{
			{payload: "*nat\n-A KUBE-NOPE -j ACCEPT\nCOMMIT\n", noflush: true, wantErr: "chain KUBE-NOPE does not exist in table nat"},
		},
	}, {
		name: "targets are restricted to their tables and hooks",
		steps: []applyStep{
			{payload: "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j REJECT\nCOMMIT\n", noflush: true, wantErr: "REJECT is only valid in table filter"},
			{payload: "*filter\n:KUBE-X - [0:0]\n-A KUBE-X -j DNAT --to-destination 10.0.0.1\nCOMMIT\n", noflush: true, wantErr: "DNAT is only valid in table nat"},
			{payload: "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -j DNAT --to-destination 10.0.0.1\n-A POSTROUTING -j KUBE-X\nCOMMIT\n", noflush: true, wantErr: "line 5: table nat: DNAT in chain KUBE-X is reachable from POSTROUTING"},
			{payload: "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -j MASQUERADE\n-A OUTPUT -j KUBE-X\nCOMMIT\n", noflush: true, wantErr: "MASQUERADE in chain KUBE-X is reachable from OUTPUT"},
		},
	}, {
		name: "loops are refused",
		steps: []applyStep{
			{payload: "*filter\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-A -j KUBE-B\n-A KUBE-B -j KUBE-A\nCOMMIT\n", noflush: true, wantErr: "loop in chain jumps: [KUBE-A KUBE-B KUBE-A]"},
		},
	}, {
		name: "family is checked",
		steps: []applyStep{
			{payload: "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -d fd00::1 -j ACCEPT\nCOMMIT\n", noflush: true, wantErr: "address fd00::1/128 is not IPv4"},
			{payload: "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -j DNAT --to-destination [fd00::1]:80\nCOMMIT\n", noflush: true, wantErr: "DNAT destination fd00::1 is not IPv4"},
			{payload: "*filter\n:KUBE-X - [0:0]\n-A KUBE-X -j REJECT --reject-with icmp6-port-unreachable\nCOMMIT\n", noflush: true, wantErr: "not valid for IPv4"},
		},
	}, {
		name: "insert, delete by spec and number, flush, policy",
		steps: []applyStep{{payload: `*filter
:FORWARD DROP [0:0]
:KUBE-X - [0:0]
-A KUBE-X -s 10.0.0.1 -j ACCEPT
-A KUBE-X -j DROP
-I KUBE-X -j RETURN
-I KUBE-X 4 -m comment --comment last -j ACCEPT
-I KUBE-X 6 -j ACCEPT
COMMIT
`, noflush: true, wantErr: "line 8: index of insertion too big"}, {payload: `*filter
:FORWARD DROP [0:0]
:KUBE-X - [0:0]
-A KUBE-X -s 10.0.0.1 -j ACCEPT
-A KUBE-X -j DROP
-I KUBE-X -j RETURN
-I KUBE-X 4 -m comment --comment last -j ACCEPT
-D KUBE-X -s 10.0.0.1/32 -j ACCEPT
-D KUBE-X 1
-A INPUT -j KUBE-X
-A INPUT -j DROP
-F INPUT
COMMIT
`, noflush: true}, {payload: "*filter\n-D KUBE-X -j RETURN\nCOMMIT\n", noflush: true, wantErr: "does a matching rule exist"}},
		want: `*filter
:INPUT ACCEPT
:FORWARD DROP
:OUTPUT ACCEPT
:KUBE-X -
-A KUBE-X -j DROP
-A KUBE-X -m comment --comment last -j ACCEPT
COMMIT
`,
	}, {
		name: "-N of an existing chain and double declaration without noflush fail",
		steps: []applyStep{
			{payload: "*raw\n-N KUBE-X\n-N KUBE-X\nCOMMIT\n", noflush: true, wantErr: "line 3: chain KUBE-X already exists"},
			{payload: "*raw\n:KUBE-X - [0:0]\n:KUBE-X - [0:0]\nCOMMIT\n", wantErr: "declared twice"},
			{payload: "*raw\n:KUBE-X - [0:0]\n:KUBE-X - [0:0]\nCOMMIT\n", noflush: true},
		},
		want: "*raw\n:PREROUTING ACCEPT\n:OUTPUT ACCEPT\n:KUBE-X -\nCOMMIT\n",
	}, {
		name: "-F and -X without a chain",
		steps: []applyStep{
			{payload: baseNAT, noflush: true},
			{payload: "*nat\n-F\n-X\nCOMMIT\n", noflush: true},
		},
		want: "*nat\n:PREROUTING ACCEPT\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\nCOMMIT\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := New(IPv4)
			for i, step := range tc.steps {
				before := rs.Save()
				err := rs.Apply([]byte(step.payload), step.noflush)
				if step.wantErr == "" {
					if err != nil {
						t.Fatalf("step %d: Apply: %v", i, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), step.wantErr) {
					t.Fatalf("step %d: Apply error = %v, want it to contain %q", i, err, step.wantErr)
				}
				if diff := cmp.Diff(before, rs.Save()); diff != "" {
					t.Fatalf("step %d: failed Apply changed the ruleset (-before +after):\n%s", i, diff)
				}
			}
			if diff := cmp.Diff(tc.want, rs.Save()); diff != "" {
				t.Errorf("Save (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSaveRoundTrip(t *testing.T) {
	rs := New(IPv6)
	payload := `*filter
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d fd00:30::41 --dport 80 -j REJECT
-A OUTPUT -m conntrack --ctstate NEW -j KUBE-SERVICES
COMMIT
*nat
:KUBE-SEP-A - [0:0]
-A KUBE-SEP-A -m comment --comment "say \"hi\"" -m tcp -p tcp -j DNAT --to-destination [fd00::1]:80
COMMIT
`
	if err := rs.Apply([]byte(payload), true); err != nil {
		t.Fatal(err)
	}
	again := New(IPv6)
	if err := again.Apply([]byte(rs.Save()), false); err != nil {
		t.Fatalf("re-applying Save output: %v\n%s", err, rs.Save())
	}
	if !rs.Equal(again) {
		t.Errorf("round trip differs:\n%s\nvs\n%s", rs.Save(), again.Save())
	}
	if got := rs.Chain("nat", "KUBE-SEP-A").Rules[0].Comment(); got != `say "hi"` {
		t.Errorf("comment = %q", got)
	}
	if rs.Chain("nat", "KUBE-NOPE") != nil || rs.Chain("mangle", "PREROUTING") != nil {
		t.Errorf("Chain should return nil for absent chains and tables")
	}
}

func TestCloneIsIndependent(t *testing.T) {
	rs := New(IPv4)
	if err := rs.Apply([]byte(baseNAT), true); err != nil {
		t.Fatal(err)
	}
	clone := rs.Clone()
	if err := clone.Apply([]byte("*nat\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j RETURN\nCOMMIT\n"), true); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(baseNATSaved, rs.Save()); diff != "" {
		t.Errorf("changing the clone changed the original (-want +got):\n%s", diff)
	}
}

func TestSameAsAndFormatArgs(t *testing.T) {
	a, err := ParseRule(FormatArgs([]string{"-m", "comment", "--comment", "a b", "-s", "10.0.0.1", "-j", "ACCEPT"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseRule(`-m comment --comment "a b" --source 10.0.0.1/32 -j ACCEPT`)
	if err != nil {
		t.Fatal(err)
	}
	if !a.SameAs(b) {
		t.Errorf("%q and %q should be the same rule", a, b)
	}
	c, _ := ParseRule(`-m comment --comment "a b" -s 10.0.0.2 -j ACCEPT`)
	if a.SameAs(c) {
		t.Errorf("%q and %q should differ", a, c)
	}
}
