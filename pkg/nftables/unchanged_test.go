package nftables

import (
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestFullRenderLeavesTaggedChainsAlone renders kube-proxy's overall scenario in full
// against a kernel whose service chains carry the tags of their rendered rules: no
// service chain is flushed or rewritten, every one is counted unchanged. One rule with
// another tag (a hand edit, or a rule nft wrote) and one chain with a rule missing make
// just those two chains rewritten.
//
// mutation-checked: comparing only the number of rules leaves the retagged chain alone;
// accepting a chain with fewer tags than rules leaves the shortened one alone.
func TestFullRenderLeavesTaggedChainsAlone(t *testing.T) {
	cfg := testConfig()
	snap := snapshotOf(t, overallObjects()...)
	tags := map[string][]uint64{}
	var chains []string
	for _, name := range snap.SortedServices() {
		objs := renderService(snap.Services[name], snap.Endpoints[name], cfg)
		if objs == nil {
			continue
		}
		for _, c := range objs.chains {
			chains = append(chains, c.name)
			for _, r := range c.rules {
				var comment *string
				if r.comment != "" {
					comment = &r.comment
				}
				tags[c.name] = append(tags[c.name], RuleTag(c.name, r.text, comment))
			}
		}
	}
	kernel := func() KernelState {
		st := EmptyKernel()
		st.Chains, st.RuleTags = chains, tags
		return st
	}
	newTx := func() *knftables.Transaction { return newFake(cfg).NewTransaction() }

	plan := Render(newTx, snap, cfg, kernel())
	if plan.Stats.UnchangedChains != len(chains) || plan.Stats.Chains != 0 {
		t.Errorf("all tagged: %d chains unchanged and %d written, want %d and 0", plan.Stats.UnchangedChains, plan.Stats.Chains, len(chains))
	}
	for _, c := range chains {
		if strings.Contains(plan.String(), "flush chain ip kube-proxy "+c+"\n") {
			t.Errorf("all tagged: %s flushed", c)
		}
	}

	retagged, shortened := chains[0], ""
	for _, c := range chains[1:] {
		if len(tags[c]) >= 2 {
			shortened = c
		}
	}
	if shortened == "" {
		t.Fatal("no chain with two rules in the scenario")
	}
	tags[retagged] = append([]uint64{tags[retagged][0] + 1}, tags[retagged][1:]...)
	tags[shortened] = tags[shortened][:len(tags[shortened])-1]
	plan = Render(newTx, snap, cfg, kernel())
	if plan.Stats.UnchangedChains != len(chains)-2 || plan.Stats.Chains != 2 {
		t.Errorf("two changed: %d chains unchanged and %d written, want %d and 2", plan.Stats.UnchangedChains, plan.Stats.Chains, len(chains)-2)
	}
	for _, c := range []string{retagged, shortened} {
		if !strings.Contains(plan.String(), "flush chain ip kube-proxy "+c+"\n") {
			t.Errorf("%s is not rewritten", c)
		}
	}
}
