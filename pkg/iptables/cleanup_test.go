package iptables

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// TestPlanCleanup programs a node with the Proxier, adds a foreign chain and rules that
// must survive, then checks that applying the cleanup plan leaves exactly the foreign
// state, and that a second plan is empty.
func TestPlanCleanup(t *testing.T) {
	ctx := context.Background()
	fake := xtablestest.NewFake(ruleset.IPv4)
	p, err := NewProxier(testConfig(), fake, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(ctx, snapshotOf(t, packetWorld()...)); err != nil {
		t.Fatal(err)
	}
	foreign := "*filter\n:DOCKER-USER - [0:0]\n:KUBE-FIREWALL - [0:0]\n-A DOCKER-USER -s 10.9.9.9 -j DROP\n-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -j DROP\nCOMMIT\n" +
		"*nat\n:CNI-HOSTPORT - [0:0]\n-A CNI-HOSTPORT -p tcp --dport 8080 -j DNAT --to-destination 10.1.1.1:80\nCOMMIT\n"
	if err := fake.Restore(ctx, []byte(foreign)); err != nil {
		t.Fatal(err)
	}
	for _, h := range []struct {
		table  xtables.Table
		chain  xtables.Chain
		target string
	}{{"filter", "FORWARD", "DOCKER-USER"}, {"filter", "INPUT", "KUBE-FIREWALL"}, {"nat", "PREROUTING", "CNI-HOSTPORT"}} {
		if err := fake.EnsureRule(ctx, h.table, h.chain, "-j", h.target); err != nil {
			t.Fatal(err)
		}
	}

	save, err := fake.SaveAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanCleanup(save)
	if len(plan.Chains) < 20 || len(plan.HookRules) != len(Hooks(testConfig())) {
		t.Fatalf("plan removes %d chains and %d hook rules; want every owned chain and all %d hooks:\n%s", len(plan.Chains), len(plan.HookRules), len(Hooks(testConfig())), plan.Payload)
	}
	if err := fake.Restore(ctx, plan.Payload); err != nil {
		t.Fatalf("cleanup payload rejected: %v\n%s", err, plan.Payload)
	}
	after, err := fake.SaveAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(after), "\n") {
		if strings.Contains(line, "KUBE-") && !strings.Contains(line, "KUBE-FIREWALL") {
			t.Errorf("left behind: %s", line)
		}
	}
	for _, want := range []string{"-A DOCKER-USER -s 10.9.9.9", "-A FORWARD -j DOCKER-USER", "-A INPUT -j KUBE-FIREWALL", "-A PREROUTING -j CNI-HOSTPORT", "-A CNI-HOSTPORT"} {
		if !strings.Contains(string(after), want) {
			t.Errorf("foreign rule %q was removed", want)
		}
	}
	if again := PlanCleanup(after); len(again.Payload) != 0 {
		t.Errorf("second cleanup is not empty:\n%s", again.Payload)
	}
}
