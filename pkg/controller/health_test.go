package controller

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/health"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// TestHealthRedWhileTheKernelCannotBeProgrammed: with no Service changed, the kernel
// stops matching what Switchyard wants (a firewall reload removed the rules, so the
// canary is gone; or a full sync failed) and cannot be repaired (the xtables lock is
// held by another program, or the sync never ends). /healthz must turn red once that
// has lasted longer than the health timeout, and green again after the next
// successful sync. kube-proxy stays green here, since it only counts changes queued
// by informer events; the node then serves stale or no rules while its probes pass
// (kubernetes#57428 is the lock case).
//
// Before the fix, nothing was queued, so /healthz stayed 200 however long it lasted.
// mutation-checked: dropping the QueuedUpdate in checkCanaries fails "the canary is
// gone"; dropping the one in sync's failure path fails "full syncs fail".
func TestHealthRedWhileTheKernelCannotBeProgrammed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// canary removes the canary chain and runs a canary check, and no sync
		// completes; otherwise a full sync is requested and every sync fails.
		canary bool
	}{
		{name: "the canary is gone", canary: true},
		{name: "full syncs fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c, kernel := syncedController(t)
			now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
			c.health = health.NewProxierHealth(time.Minute, func() time.Time { return now })
			c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
			c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
			if err := c.sync(ctx); err != nil {
				t.Fatal(err)
			}
			if ok, st := c.health.Healthy(); !ok {
				t.Fatalf("after the first sync: unhealthy (%s)", st.Reason)
			}

			if tc.canary {
				if err := kernel.Restore(ctx, []byte("*nat\n-X "+string(xtables.ChainCanary)+"\nCOMMIT\n")); err != nil {
					t.Fatal(err)
				}
				c.checkCanaries(ctx)
				now = now.Add(90 * time.Second)
			} else {
				providers, _ := c.currentProviders()
				for _, p := range providers {
					p.RequestFullSync("periodic")
				}
				for range 3 {
					kernel.FailNext("Restore", xtablestest.LockTimeout())
					if err := c.sync(ctx); err == nil {
						t.Fatal("a sync with the lock held succeeded")
					}
					now = now.Add(30 * time.Second)
				}
			}
			if ok, _ := c.health.Healthy(); ok {
				t.Errorf("healthy 90 s later, want unhealthy")
			}

			if err := c.sync(ctx); err != nil {
				t.Fatal(err)
			}
			if ok, st := c.health.Healthy(); !ok {
				t.Errorf("after a successful sync: unhealthy (%s)", st.Reason)
			}
		})
	}
}
