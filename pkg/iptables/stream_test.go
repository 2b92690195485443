package iptables

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// TestRenderRestoresEqualsWhole is TestSplitPayloadEqualsWhole for the streamed full
// render: for random worlds, cold and warm (stale chains to delete), its restores are
// accepted one after the other by the strict ruleset (no intermediate state jumps to
// a missing chain or deletes a referenced one), each stays within the chain bound,
// and together they leave exactly the tables Render's whole payload leaves, with the
// same Stats.
//
// mutation-checked: leaving the endpoints out of ownedChainCount fails the bound
// ("declares 6 nat chains"); not removing claimed chains from exists (every existing
// chain stale) fails "restore rejected" (a live chain deleted); deleting stale
// chains in reverse deletionRank order fails "restore rejected" (still referenced).
// Dropping the entry declarations (step 2), which only keeps the kernel's chain list
// fast, fails TestRenderRestoresShape, as does an extra restore before the shared one.
func TestRenderRestoresEqualsWhole(t *testing.T) {
	for seed := range uint64(120) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x57e4))
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
				existing := start.ChainNames("nat")
				plan := Render(next, cfg, existing)
				whole := start.Clone()
				if err := whole.Apply(plan.Payload, true); err != nil {
					t.Fatalf("whole payload rejected: %v", err)
				}
				streamed := start.Clone()
				r := RenderRestores(next, cfg, existing, maxChains)
				n := 0
				for payload := range r.All() {
					n++
					if err := streamed.Apply(payload, true); err != nil {
						t.Fatalf("warm=%v maxChains=%d: restore %d rejected: %v\n%s", warm, maxChains, n, err, payload)
					}
					if err := checkRestoreBound(payload, maxChains); err != nil {
						t.Errorf("warm=%v: restore %d: %v\n%s", warm, n, err, payload)
					}
				}
				if diff := cmp.Diff(whole.Save(), streamed.Save()); diff != "" {
					t.Fatalf("warm=%v maxChains=%d: streamed != whole (-whole +streamed):\n%s", warm, maxChains, diff)
				}
				if diff := cmp.Diff(plan.Stats, r.Stats); diff != "" {
					t.Errorf("warm=%v maxChains=%d: Stats differ from Render's (-Render +streamed):\n%s", warm, maxChains, diff)
				}
			}
		})
	}
}

// TestRenderRestoresShape checks the restores of a cold sync of a synthetic cluster
// whose services do not fit one restore: KUBE-MARK-MASQ first, then the new
// KUBE-SVC- chains declared empty, then every service port's chains (each whole in
// one restore), then the shared chains, and no payload larger than a batch apart from
// the shared chains'.
func TestRenderRestoresShape(t *testing.T) {
	snap := newSyntheticCluster(t, 30, 3).tracker.Snapshot()
	r := RenderRestores(snap, testConfig(), nil, 10)
	if r.Payload != nil {
		t.Fatal("30 services × 4 chains rendered whole with maxChains=10")
	}
	var kinds []string
	for payload := range r.All() {
		text := string(payload)
		switch {
		case strings.Contains(text, ":"+ChainMarkMasq+" "):
			kinds = append(kinds, "mark-masq")
		case strings.Contains(text, "*filter"):
			kinds = append(kinds, "shared")
		case !strings.Contains(text, "\n-A "):
			kinds = append(kinds, "entries")
		default:
			kinds = append(kinds, "services")
			// 4 chains per service port: two whole service ports per restore.
			if got := strings.Count(text, "\n:"+PrefixServiceCluster); got != 2 {
				t.Errorf("a batch holds %d service ports, want 2 (maxChains 10, 4 chains each):\n%s", got, text)
			}
		}
	}
	want := []string{"mark-masq", "entries", "entries", "entries"}
	for range 15 {
		want = append(want, "services")
	}
	want = append(want, "shared")
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("restores (-want +got):\n%s", diff)
	}
}

// TestRenderRestoresSmallIsWhole checks that a render whose chains fit one restore is
// Render's payload, byte for byte, yielded alone.
func TestRenderRestoresSmallIsWhole(t *testing.T) {
	snap := newSyntheticCluster(t, 5, 2).tracker.Snapshot()
	want := Render(snap, testConfig(), nil)
	for _, maxChains := range []int{0, 100} {
		r := RenderRestores(snap, testConfig(), nil, maxChains)
		var got [][]byte
		for payload := range r.All() {
			got = append(got, bytes.Clone(payload))
		}
		if len(got) != 1 || !bytes.Equal(got[0], want.Payload) {
			t.Errorf("maxChains=%d: %d restores, want Render's payload alone", maxChains, len(got))
		}
		if diff := cmp.Diff(want.Stats, r.Stats); diff != "" {
			t.Errorf("maxChains=%d: Stats (-want +got):\n%s", maxChains, diff)
		}
	}
}

// TestRenderStreamEqualsRender checks that RenderStream writes Render's payload byte
// for byte, with the same Stats, for random worlds, with stale chains and with folded
// hooks.
//
// mutation-checked: writing the nat hooks after the deletions fails it. (Buffering
// the whole of the nat rules instead of flushing every 256 KiB passes: that is memory,
// measured by hack/bench-dryrun.sh.)
func TestRenderStreamEqualsRender(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0xd7e5))
			cfg := testConfig()
			cfg.LocalhostNodePorts = seed%3 == 0
			if seed%2 == 0 {
				cfg.hooks = planHooks(Hooks(cfg), map[string]*savedTable{}, cfg.renderDeclares)
			}
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
			existing := ruleset.New(ruleset.IPv4)
			if err := existing.Apply(Render(earlier, testConfig(), nil).Payload, true); err != nil {
				t.Fatal(err)
			}
			want := Render(next, cfg, existing.ChainNames("nat"))
			streamed := RenderStream(next, cfg, existing.ChainNames("nat"))
			var got bytes.Buffer
			n, err := streamed.WriteTo(&got)
			if err != nil || n != int64(got.Len()) {
				t.Fatalf("WriteTo = %d, %v; wrote %d bytes", n, err, got.Len())
			}
			if diff := cmp.Diff(string(want.Payload), got.String()); diff != "" {
				t.Errorf("payload (-Render +RenderStream):\n%s", diff)
			}
			if diff := cmp.Diff(want.Stats, streamed.Stats); diff != "" {
				t.Errorf("Stats (-Render +RenderStream):\n%s", diff)
			}
		})
	}
}
