package controller

import (
	"bytes"
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"

	conntracktest "github.com/switchyard-io/switchyard/pkg/conntrack/testing"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// loggedContext returns a context whose logger writes at verbosity v into the
// returned buffer.
func loggedContext(v int) (context.Context, *bytes.Buffer) {
	var buf bytes.Buffer
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(v), textlogger.Output(&buf)))
	return klog.NewContext(context.Background(), logger), &buf
}

// syncedController returns a controller in iptables mode over a fake kernel with its
// providers built for testNode, without running the informers: tests call its
// handlers and sync directly.
func syncedController(t *testing.T) (*Controller, *xtablestest.Fake) {
	t.Helper()
	cfg := Defaults()
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	c := newController(cfg, "node1", fake.NewClientset())
	kernel := xtablestest.NewFake(ruleset.IPv4)
	c.newIPTables = func(context.Context, v1.IPFamily) (xtables.Interface, error) { return kernel, nil }
	c.conntrack = &conntracktest.Fake{}
	t.Cleanup(c.services.Close)
	facts, err := node.FromNode(testNode())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.buildProviders(context.Background(), facts); err != nil {
		t.Fatal(err)
	}
	return c, kernel
}

// TestVerbosityLevels checks the levels the README promises: 0 lifecycle, 2 each sync,
// 4 each object, 9 payloads.
func TestVerbosityLevels(t *testing.T) {
	for _, tc := range []struct {
		v                                 int
		wantSync, wantObject, wantPayload bool
	}{
		{v: 0},
		{v: 2, wantSync: true},
		{v: 4, wantSync: true, wantObject: true},
		// mutation-checked: logging the payload at V(4) fails the v=4 case.
		{v: 9, wantSync: true, wantObject: true, wantPayload: true},
	} {
		t.Run("v="+string(rune('0'+tc.v)), func(t *testing.T) {
			c, _ := syncedController(t)
			ctx, logs := loggedContext(tc.v)
			c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
			c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
			if err := c.sync(ctx); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			for _, check := range []struct {
				what, marker string
				want         bool
			}{
				{"the sync summary", `"Synced"`, tc.wantSync},
				{"the per-object entries", `"Service event"`, tc.wantObject},
				{"the per-object entries", `"EndpointSlice event"`, tc.wantObject},
				{"the restore payload", `-A KUBE-SVC-`, tc.wantPayload},
			} {
				if got := strings.Contains(out, check.marker); got != check.want {
					t.Errorf("at -v=%d, %s (%s) logged = %v, want %v; log:\n%s", tc.v, check.what, check.marker, got, check.want, out)
				}
			}
		})
	}
}

// TestNodeWithoutAddressesIsLogged checks that a Node update that loses its addresses
// is logged (it keeps the previous configuration, as before) instead of being dropped
// silently.
func TestNodeWithoutAddressesIsLogged(t *testing.T) {
	c, _ := syncedController(t)
	ctx, logs := loggedContext(0)
	bare := testNode()
	bare.Status.Addresses = nil
	c.nodeHandler(ctx).OnUpdate(testNode(), bare)
	if !strings.Contains(logs.String(), "Node update without usable addresses") || !strings.Contains(logs.String(), "192.168.0.2") {
		t.Errorf("no log of the address-less Node update naming the addresses kept; log:\n%s", logs)
	}
	providers, facts := c.currentProviders()
	if len(providers) != 1 || facts.IPs[0].String() != "192.168.0.2" {
		t.Errorf("the previous configuration was not kept: %d providers, ips %v", len(providers), facts.IPs)
	}
}

// TestSyncCutShortByShutdownIsNotAnError checks that a sync whose apply fails because
// the daemon is shutting down (SIGTERM cancels the context and kills iptables-restore or
// ipset restore) is logged as an interruption, not as a failed sync to retry.
// Mutation-checked: dropping the ctx.Err() branch in sync fails this test.
func TestSyncCutShortByShutdownIsNotAnError(t *testing.T) {
	c, kernel := syncedController(t)
	ctx, logs := loggedContext(0)
	ctx, cancel := context.WithCancel(ctx)
	c.serviceHandler(ctx).OnAdd(testService("web", "172.30.0.10"), false)
	c.sliceHandler(ctx).OnAdd(testSlice("web", "10.180.0.1"), false)
	cancel()
	kernel.FailNext("Restore", context.Canceled)
	if err := c.sync(ctx); err == nil {
		t.Fatal("sync succeeded, want the injected failure")
	}
	out := logs.String()
	if strings.Contains(out, "Sync failed") || !strings.Contains(out, "Sync interrupted by shutdown") {
		t.Errorf("log after a sync cut short by shutdown:\n%s\nwant \"Sync interrupted by shutdown\" and no \"Sync failed\"", out)
	}
}
