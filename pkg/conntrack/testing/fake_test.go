package testing

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
)

// TestFakeFailNext checks that an injected DeleteFlows failure deletes nothing and
// that the next call deletes again.
func TestFakeFailNext(t *testing.T) {
	ctx := context.Background()
	flow := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.10:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	var f Fake // the zero value is usable
	f.Add(flow)
	all := func(conntrack.Flow) bool { return true }

	injected := errors.New("netlink: injected")
	f.FailNext("DeleteFlows", injected)
	if n, err := f.DeleteFlows(ctx, v1.IPv4Protocol, all); !errors.Is(err, injected) || n != 0 {
		t.Fatalf("DeleteFlows with a failure injected = %d, %v; want 0, %v", n, err, injected)
	}
	if diff := cmp.Diff([]conntrack.Flow{flow}, f.Flows(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Fatalf("the failed DeleteFlows changed the table (-want +got):\n%s", diff)
	}
	if n, err := f.DeleteFlows(ctx, v1.IPv4Protocol, all); err != nil || n != 1 {
		t.Fatalf("DeleteFlows after the failure = %d, %v; want 1, nil", n, err)
	}
	if got := f.Flows(); len(got) != 0 {
		t.Errorf("flows left: %v", got)
	}
}
