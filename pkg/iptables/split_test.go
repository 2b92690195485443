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
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// TestSplitPayloadEqualsWhole is the property that makes split full syncs safe: for
// random worlds, applying SplitPayload's restores one after the other, onto an empty
// table (a cold start) or onto the tables of an earlier state (a periodic full sync,
// with stale chains to delete), is accepted restore by restore by the strict ruleset
// (so no intermediate state jumps to a missing chain or deletes a referenced one) and
// ends in exactly the tables the whole payload gives.
func TestSplitPayloadEqualsWhole(t *testing.T) {
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
				for payload := range SplitPayload(plan.Payload, maxChains, start.ChainNames("nat")) {
					restores = append(restores, bytes.Clone(payload))
				}
				if live := serviceDeclarations(plan.Payload) - plan.Stats.DeletedChains; live > maxChains && len(restores) < 2 {
					t.Errorf("%d per-service chains, maxChains=%d: payload not split", live, maxChains)
				}
				for i, payload := range restores {
					if err := split.Apply(payload, true); err != nil {
						t.Fatalf("warm=%v maxChains=%d: restore %d of %d rejected: %v\n%s", warm, maxChains, i+1, len(restores), err, payload)
					}
					if err := checkRestoreBound(payload, maxChains); err != nil {
						t.Errorf("warm=%v: restore %d of %d: %v\n%s", warm, i+1, len(restores), err, payload)
					}
				}
				if diff := cmp.Diff(whole.Save(), split.Save()); diff != "" {
					t.Fatalf("warm=%v maxChains=%d: split != whole (-whole +split):\n%s", warm, maxChains, diff)
				}
			}
		})
	}
}

func TestSplitPayloadKeepsSmallPayloadsWhole(t *testing.T) {
	payload := []byte("*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SEP-A - [0:0]\n-A KUBE-SEP-A -j KUBE-MARK-MASQ\nCOMMIT\n")
	for _, maxChains := range []int{0, 2, 100} {
		if got := slices.Collect(SplitPayload(payload, maxChains, nil)); len(got) != 1 || string(got[0]) != string(payload) {
			t.Errorf("maxChains=%d: got %d restores, want the payload whole", maxChains, len(got))
		}
	}
}

// checkRestoreBound is SplitPayload's bound: a restore declares at most maxChains nat
// chains, unless it declares only one service port's chains (which must change
// together) or only the fixed shared chains (a constant number).
//
// mutation-checked: writing the stale chains' flushes and deletions into the shared
// chains' restore, as before, fails TestSplitPayloadEqualsWhole (warm) and
// TestSplitPartialEqualsWhole here; deleting them in reverse order (KUBE-SEP- first)
// fails both with "still referenced".
func checkRestoreBound(payload []byte, maxChains int) error {
	_, nat, _, ok := cutTable(payload, "nat")
	if !ok {
		return nil
	}
	var service, fixed []string
	for line := range strings.Lines(string(nat)) {
		if name, _, ok := strings.Cut(strings.TrimPrefix(line, ":"), " "); ok && strings.HasPrefix(line, ":") {
			if IsServiceChain(name) {
				service = append(service, name)
			} else {
				fixed = append(fixed, name)
			}
		}
	}
	if len(service)+len(fixed) <= maxChains || len(service) == 0 {
		return nil
	}
	perPrefix := map[string]int{}
	for _, name := range service {
		perPrefix[name[:strings.LastIndex(name, "-")+1]]++
	}
	if len(fixed) == 0 && perPrefix[PrefixServiceCluster] <= 1 && perPrefix[PrefixServiceLocal] <= 1 &&
		perPrefix[PrefixExternal] <= 1 && perPrefix[PrefixFirewall] <= 1 {
		return nil // one service port's chains
	}
	return fmt.Errorf("declares %d nat chains (%d per-service, fixed %v), more than maxChains=%d", len(service)+len(fixed), len(service), fixed, maxChains)
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

// TestSplitPartialEqualsWhole: partial payloads split the same way (their -I/-D edits of
// the shared chains go to the shared chains' restore, their deleted chains to batches
// after it) are accepted restore by restore and leave exactly the tables the whole partial payload leaves, step after
// step of random changes.
func TestSplitPartialEqualsWhole(t *testing.T) {
	const sequences, steps = 100, 20
	splitSyncs := 0 // partial syncs that took more than one restore
	for seed := range uint64(sequences) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x9a27))
			cfg := testConfig()
			world := newRandomWorld(rng)
			tracker := endpoints.NewTracker(testNode)
			prev := tracker.Snapshot()
			whole := ruleset.New(ruleset.IPv4)
			if err := whole.Apply(Render(prev, cfg, nil).Payload, true); err != nil {
				t.Fatal(err)
			}
			split := whole.Clone()
			for step := range steps {
				for range 1 + rng.IntN(4) {
					world.mutate(rng, tracker)
				}
				next := tracker.Snapshot()
				plan := RenderPartial(prev, next, next.SortedChanged(), cfg)
				if err := whole.Apply(plan.Payload, true); err != nil {
					t.Fatalf("step %d: whole partial payload rejected: %v", step, err)
				}
				maxChains := 1 + rng.IntN(3)
				n := 0
				for payload := range SplitPayload(plan.Payload, maxChains, split.ChainNames("nat")) {
					n++
					if err := split.Apply(payload, true); err != nil {
						t.Fatalf("step %d, maxChains=%d: restore %d rejected: %v\n%s\nwhole payload:\n%s", step, maxChains, n, err, payload, plan.Payload)
					}
					if err := checkRestoreBound(payload, maxChains); err != nil {
						t.Errorf("step %d: restore %d: %v\n%s", step, n, err, payload)
					}
				}
				if diff := cmp.Diff(whole.Save(), split.Save()); diff != "" {
					t.Fatalf("step %d, maxChains=%d: split != whole (-whole +split):\n%s\npayload:\n%s", step, maxChains, diff, plan.Payload)
				}
				if n > 1 {
					splitSyncs++
				}
				prev = next
			}
		})
	}
	if splitSyncs < sequences {
		t.Errorf("only %d of %d partial syncs were split: the property is barely exercised", splitSyncs, sequences*steps)
	}
	t.Logf("%d of %d partial syncs split", splitSyncs, sequences*steps)
}
