package xtables_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestesting "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// testHooks are n jumps from nat PREROUTING into chains of their own.
func testHooks(n int) []xtables.Hook {
	var hooks []xtables.Hook
	for i := range n {
		target := xtables.Chain(fmt.Sprintf("KUBE-TEST-%d", i))
		hooks = append(hooks, xtables.Hook{Table: xtables.TableNAT, Chain: "PREROUTING", Target: target,
			Args: []string{"-m", "comment", "--comment", "test hook", "-j", string(target)}})
	}
	return hooks
}

// TestEnsureHooksStopsAtALockTimeout: with the xtables lock held, every command waits
// out the bound and fails alike, so EnsureHooks and EnsureCanary give up at the first
// lock timeout instead of waiting once per hook (12 × --iptables-lock-wait per retried
// IPVS full sync on iptables-legacy, measured in the guest); any other failure still
// leaves the remaining hooks ensured.
// mutation-checked: without the IsLockTimeout break in EnsureHooks, "lock held"
// fails ("9 EnsureChain calls made, want 1"); with a break on every error, "other
// error" fails ("KUBE-TEST-1 not ensured").
func TestEnsureHooksStopsAtALockTimeout(t *testing.T) {
	ctx := context.Background()
	t.Run("lock held", func(t *testing.T) {
		ipt := xtablestesting.NewFake(ruleset.IPv4)
		for range 9 {
			ipt.FailNext("EnsureChain", xtablestesting.LockTimeout())
		}
		err := xtables.EnsureHooks(ctx, ipt, testHooks(9))
		if !xtables.IsLockTimeout(err) {
			t.Fatalf("EnsureHooks = %v, want a lock timeout", err)
		}
		if left := ipt.Pending("EnsureChain"); left != 8 {
			t.Errorf("%d EnsureChain calls made, want 1", 9-left)
		}
		for range 3 {
			ipt.FailNext("EnsureChain", xtablestesting.LockTimeout())
		}
		if err := xtables.EnsureCanary(ctx, ipt); !xtables.IsLockTimeout(err) {
			t.Fatalf("EnsureCanary = %v, want a lock timeout", err)
		}
		if left := ipt.Pending("EnsureChain"); left != 8+2 {
			t.Errorf("EnsureCanary made %d EnsureChain calls, want 1", 3-(left-8))
		}
	})
	t.Run("other error", func(t *testing.T) {
		ipt := xtablestesting.NewFake(ruleset.IPv4)
		ipt.FailNext("EnsureChain", errors.New("boom"))
		err := xtables.EnsureHooks(ctx, ipt, testHooks(3))
		if err == nil || xtables.IsLockTimeout(err) {
			t.Fatalf("EnsureHooks = %v, want the injected error", err)
		}
		for _, h := range testHooks(3)[1:] {
			if ok, err := ipt.ChainExists(ctx, h.Table, h.Target); !ok || err != nil {
				t.Errorf("%s not ensured after another hook failed: %v, %v", h.Target, ok, err)
			}
		}
	})
}
