package controller

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/switchyard-io/switchyard/pkg/runner"
)

// TestNewServiceWaitsForItsSlice feeds informer events to the handlers and checks the
// sync each one requests, on a runner that is not running and reads a fake clock: no
// sync happens and nothing is timed.
func TestNewServiceWaitsForItsSlice(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	const minSync = time.Second
	for _, tc := range []struct {
		name   string
		events func(c *Controller, ctx context.Context)
		// wantDue is the latest start the requests allow; the zero time means as soon
		// as the minimum interval allows.
		wantDue     time.Time
		wantPending bool
	}{
		{
			// mutation-checked: passing 0 instead of syncWindow's result to changed
			// fails here.
			name: "new Service without a slice waits up to the minimum interval",
			events: func(c *Controller, ctx context.Context) {
				c.serviceHandler(ctx).OnAdd(testService("web", "10.96.0.10"), false)
			},
			wantDue:     t0.Add(minSync),
			wantPending: true,
		},
		{
			name: "its slice arriving asks for the sync at once",
			events: func(c *Controller, ctx context.Context) {
				c.serviceHandler(ctx).OnAdd(testService("web", "10.96.0.10"), false)
				c.sliceHandler(ctx).OnAdd(testSlice("web", "10.244.1.5"), false)
			},
			wantPending: true,
		},
		{
			name: "slice first, then the Service: at once",
			events: func(c *Controller, ctx context.Context) {
				c.sliceHandler(ctx).OnAdd(testSlice("web", "10.244.1.5"), false)
				c.serviceHandler(ctx).OnAdd(testService("web", "10.96.0.10"), false)
			},
			wantPending: true,
		},
		{
			// mutation-checked: syncWindow ignoring AwaitsEndpoints (always the
			// minimum interval for Services) fails here.
			name: "a change to a synced Service: at once",
			events: func(c *Controller, ctx context.Context) {
				c.serviceHandler(ctx).OnAdd(testService("web", "10.96.0.10"), false)
				c.tracker.Snapshot()
				c.serviceHandler(ctx).OnUpdate(nil, testService("web", "10.96.0.11"))
			},
			wantPending: true,
		},
		{
			name: "a deleted Service: at once",
			events: func(c *Controller, ctx context.Context) {
				c.serviceHandler(ctx).OnDelete(testService("web", "10.96.0.10"))
			},
			wantPending: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.MinSyncPeriod = minSync
			c := newController(cfg, "node1", fake.NewClientset())
			c.runner = runner.New("sync", c.sync, cfg.MinSyncPeriod, cfg.SyncPeriod, runner.WithClock(testingclock.NewFakeClock(t0)))
			tc.events(c, context.Background())
			due, pending := c.runner.Pending()
			if pending != tc.wantPending || !due.Equal(tc.wantDue) {
				t.Errorf("pending %t due %v, want %t due %v", pending, due, tc.wantPending, tc.wantDue)
			}
		})
	}
}
