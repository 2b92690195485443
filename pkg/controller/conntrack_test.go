package controller

import (
	"context"
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	conntracktest "github.com/switchyard-io/switchyard/pkg/conntrack/testing"
)

// gatedConntrack holds every DeleteStale until its gate opens.
type gatedConntrack struct {
	gate  chan struct{}
	calls chan struct{}
	*conntracktest.Fake
}

func (g *gatedConntrack) DeleteStale(ctx context.Context, family v1.IPFamily, filter *conntrack.StaleUDP) (conntrack.Result, error) {
	g.calls <- struct{}{}
	<-g.gate
	return g.Fake.DeleteStale(ctx, family, filter)
}

// TestConntrackCleanupDoesNotBlockSyncs checks that syncs go on while a cleanup runs,
// and that the changes they apply meanwhile are cleaned up by one more cleanup from
// the latest snapshot (coalesced), not lost.
//
// mutation-checked: calling cleanConntrack in afterSync (on the sync loop) fails this:
// the second sync does not return while the first cleanup is held.
func TestConntrackCleanupDoesNotBlockSyncs(t *testing.T) {
	c, _ := syncedController(t)
	g := &gatedConntrack{gate: make(chan struct{}), calls: make(chan struct{}, 10), Fake: &conntracktest.Fake{}}
	c.conntrack = g
	ctx := context.Background()
	dns := testService("dns", "172.30.0.53")
	dns.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}
	slice := func(ips ...string) *discovery.EndpointSlice {
		s := testSlice("dns", ips...)
		s.Ports = []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}}
		return s
	}
	c.serviceHandler(ctx).OnAdd(dns, false)
	c.sliceHandler(ctx).OnAdd(slice("10.180.0.1", "10.180.0.2", "10.180.0.3"), false)
	first := make(chan error, 1)
	go func() { first <- c.sync(ctx) }()
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a deadlock, not a timing: the gate is shut
		close(g.gate)
		<-first
		t.Fatal("the first sync waited for its conntrack cleanup")
	}
	<-g.calls // the start-up cleanup is running, held at the gate

	toGone := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.53:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	toKept := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.53:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.3:53")}
	g.Add(toGone, toKept)
	synced := make(chan error, 2)
	go func() {
		c.sliceHandler(ctx).OnUpdate(nil, slice("10.180.0.2", "10.180.0.3"))
		synced <- c.sync(ctx)
		c.sliceHandler(ctx).OnUpdate(nil, slice("10.180.0.3"))
		synced <- c.sync(ctx)
	}()
	for i := 0; i < 2; i++ {
		select {
		case err := <-synced:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second): // a deadlock, not a timing: the gate is shut
			close(g.gate)
			t.Fatal("a sync waited for the running conntrack cleanup")
		}
	}
	close(g.gate)
	c.waitConntrack()
	if got := len(g.calls); got != 1 {
		t.Errorf("%d cleanups after the held one, want 1 (the two syncs coalesced)", got)
	}
	if diff := g.Flows(); len(diff) != 1 || diff[0] != toKept {
		t.Errorf("table after the cleanups: %+v, want only %+v", diff, toKept)
	}
}
