package xtables

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMasqueradeMark(t *testing.T) {
	for bit, want := range map[int]string{0: "0x1", 14: "0x4000", 15: "0x8000", 31: "0x80000000"} {
		if got := MasqueradeMark(bit); got != want {
			t.Errorf("MasqueradeMark(%d) = %q, want %q", bit, got, want)
		}
	}
}

// TestNewMasqueradeRules pins the rules both modes write; cmd/proxy's golden files pin
// where each mode writes them.
func TestNewMasqueradeRules(t *testing.T) {
	forwardAccept := []Rule{
		{ChainKubeForward, `-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x8000/0x8000 -j ACCEPT`},
		{ChainKubeForward, `-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`},
	}
	nat := []Rule{
		{ChainKubePostrouting, "-m mark ! --mark 0x8000/0x8000 -j RETURN"},
		{ChainKubePostrouting, "-j MARK --xor-mark 0x8000"},
		{ChainKubePostrouting, `-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`},
		{ChainKubeMarkMasq, "-j MARK --or-mark 0x8000"},
	}
	for _, tc := range []struct {
		name        string
		dropInvalid bool
		want        MasqueradeRules
	}{
		{"without the INVALID drop", false, MasqueradeRules{NAT: nat, Filter: forwardAccept}},
		{"with the INVALID drop", true, MasqueradeRules{NAT: nat, Filter: append([]Rule{{ChainKubeForward, "-m conntrack --ctstate INVALID -j DROP"}}, forwardAccept...)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewMasqueradeRules(MasqueradeMark(15), tc.dropInvalid)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("NewMasqueradeRules (-want +got):\n%s", diff)
			}
		})
	}
}
