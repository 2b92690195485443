package testing

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// IP plan: UDP service 172.30.0.10:53 with no endpoints; 8.8.8.8:53 is not a service.

// noEndpoints is a filter under which every translated flow to 172.30.0.10:53 is stale.
func noEndpoints() *conntrack.StaleUDP {
	name := endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "dns"}, Port: "dns", Protocol: v1.ProtocolUDP}
	snap := &endpoints.Snapshot{
		Services:  map[endpoints.ServicePortName]*endpoints.ServicePort{name: {Name: name, Port: 53, ClusterIPs: []netip.Addr{netip.MustParseAddr("172.30.0.10")}}},
		Endpoints: map[endpoints.ServicePortName][]*endpoints.Endpoint{},
	}
	return conntrack.NewStaleUDP(nil, snap, nil)
}

// TestFakeFailNext checks that an injected DeleteStale failure deletes nothing and
// that the next call deletes again.
func TestFakeFailNext(t *testing.T) {
	ctx := context.Background()
	flow := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.10:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	var f Fake // the zero value is usable
	f.Add(flow)

	injected := errors.New("netlink: injected")
	f.FailNext("DeleteStale", injected)
	if res, err := f.DeleteStale(ctx, v1.IPv4Protocol, noEndpoints()); !errors.Is(err, injected) || res.Deleted != 0 {
		t.Fatalf("DeleteStale with a failure injected = %+v, %v; want 0 deleted, %v", res, err, injected)
	}
	if diff := cmp.Diff([]conntrack.Flow{flow}, f.Flows(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Fatalf("the failed DeleteStale changed the table (-want +got):\n%s", diff)
	}
	if res, err := f.DeleteStale(ctx, v1.IPv4Protocol, noEndpoints()); err != nil || res.Deleted != 1 {
		t.Fatalf("DeleteStale after the failure = %+v, %v; want 1 deleted, nil", res, err)
	}
	if got := f.Flows(); len(got) != 0 {
		t.Errorf("flows left: %v", got)
	}
}

// TestFakeReadsOnlyFrontends checks that the fake, like the kernel's filtered dumps,
// reads only UDP entries to the filter's frontends of the family asked.
func TestFakeReadsOnlyFrontends(t *testing.T) {
	var f Fake
	toService := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.10:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	elsewhere := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("8.8.8.8:53"), ReplySrc: netip.MustParseAddrPort("8.8.8.8:53")}
	tcp := conntrack.Flow{Protocol: v1.ProtocolTCP, OrigDst: netip.MustParseAddrPort("172.30.0.10:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	f.Add(toService, elsewhere, elsewhere, tcp)
	if res, err := f.DeleteStale(context.Background(), v1.IPv6Protocol, noEndpoints()); err != nil || res != (conntrack.Result{}) {
		t.Errorf("IPv6 DeleteStale = %+v, %v; want no dump", res, err)
	}
	res, err := f.DeleteStale(context.Background(), v1.IPv4Protocol, noEndpoints())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(conntrack.Result{Deleted: 1, Read: 1, Dumps: 1}, res); diff != "" {
		t.Errorf("IPv4 DeleteStale (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]conntrack.Flow{elsewhere, elsewhere, tcp}, f.Flows(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("flows left (-want +got):\n%s", diff)
	}
}
