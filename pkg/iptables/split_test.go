package iptables

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables/ruleset"
)

// TestSplitFullEqualsWhole is the property that makes split full syncs safe: for
// random worlds, applying SplitFull's restores one after the other, onto an empty
// table (a cold start) or onto the tables of an earlier state (a periodic full sync,
// with stale chains to delete), is accepted restore by restore by the strict ruleset
// (so no intermediate state jumps to a missing chain or deletes a referenced one) and
// ends in exactly the tables the whole payload gives.
func TestSplitFullEqualsWhole(t *testing.T) {
	for seed := range uint64(120) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5b11))
			cfg := testConfig()
			world := newRandomWorld(rng)
			tracker := endpoints.NewTracker(testNode)
			for range 5 + rng.IntN(20) {
				world.mutate(rng, tracker)
			}
			earlier := tracker.Snapshot()
			for range 1 + rng.IntN(10) {
				world.mutate(rng, tracker)
			}
			next := tracker.Snapshot()
			maxChains := 1 + rng.IntN(6)

			for _, warm := range []bool{false, true} {
				start := ruleset.New(ruleset.IPv4)
				if warm {
					if err := start.Apply(Render(earlier, cfg, nil).Payload, true); err != nil {
						t.Fatalf("earlier full payload rejected: %v", err)
					}
				}
				plan := Render(next, cfg, start.ChainNames("nat"))
				whole := start.Clone()
				if err := whole.Apply(plan.Payload, true); err != nil {
					t.Fatalf("whole payload rejected: %v", err)
				}
				split := start.Clone()
				var restores [][]byte
				for payload := range SplitFull(plan.Payload, maxChains, start.ChainNames("nat")) {
					restores = append(restores, bytes.Clone(payload))
				}
				if live := serviceDeclarations(plan.Payload) - plan.Stats.DeletedChains; live > maxChains && len(restores) < 2 {
					t.Errorf("%d per-service chains, maxChains=%d: payload not split", live, maxChains)
				}
				for i, payload := range restores {
					if err := split.Apply(payload, true); err != nil {
						t.Fatalf("warm=%v maxChains=%d: restore %d of %d rejected: %v\n%s", warm, maxChains, i+1, len(restores), err, payload)
					}
					// Over the limit only for one service port's chains.
					if i < len(restores)-1 && serviceDeclarations(payload) > maxChains &&
						(strings.Count(string(payload), ":"+PrefixServiceCluster) > 1 || strings.Count(string(payload), ":"+PrefixServiceLocal) > 1) {
						t.Errorf("restore %d declares more than %d chains of several service ports:\n%s", i+1, maxChains, payload)
					}
				}
				if diff := cmp.Diff(whole.Save(), split.Save()); diff != "" {
					t.Fatalf("warm=%v maxChains=%d: split != whole (-whole +split):\n%s", warm, maxChains, diff)
				}
			}
		})
	}
}

func TestSplitFullKeepsSmallPayloadsWhole(t *testing.T) {
	payload := []byte("*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SEP-A - [0:0]\n-A KUBE-SEP-A -j KUBE-MARK-MASQ\nCOMMIT\n")
	for _, maxChains := range []int{0, 2, 100} {
		if got := slices.Collect(SplitFull(payload, maxChains, nil)); len(got) != 1 || string(got[0]) != string(payload) {
			t.Errorf("maxChains=%d: got %d restores, want the payload whole", maxChains, len(got))
		}
	}
}

// serviceDeclarations counts the per-service chains a payload declares.
func serviceDeclarations(payload []byte) int {
	n := 0
	for line := range strings.Lines(string(payload)) {
		if name, _, ok := strings.Cut(strings.TrimPrefix(line, ":"), " "); ok && strings.HasPrefix(line, ":") && IsServiceChain(name) {
			n++
		}
	}
	return n
}
