package iptables

// IP plan for the tests in this package:
//
//	cluster (pod) CIDR   10.0.0.0/8, fd00:10::/64
//	service CIDR         172.30.0.0/16, fd00:30::/108
//	this node            "node1", 192.168.0.2 and fd00:192::2, zone "zone-a"
//	other node           "node2", 192.168.0.3
//	pods on node1        10.180.0.0/24; pods on node2 10.180.1.0/24
//	external and LB IPs  203.0.113.0/24 (1.2.3.4 in places as kube-proxy's tests do)
//	outside client       198.51.100.7

import (
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/endpoints/endpointstest"
	"github.com/switchyard-io/switchyard/pkg/node"
)

const (
	testNode      = "node1"
	otherNode     = "node2"
	testNodeIP    = "192.168.0.2"
	testNodeIPv6  = "fd00:192::2"
	testZone      = "zone-a"
	testClusterV4 = "10.0.0.0/8"
)

// testConfig returns the IPv4 Config of node1.
func testConfig() *Config {
	return &Config{FamilyConfig: node.FamilyConfig{
		Family:  v1.IPv4Protocol,
		Node:    endpoints.NodeTopology{Name: testNode, Zone: testZone},
		NodeIPs: []netip.Addr{netip.MustParseAddr(testNodeIP)},
		Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix(testClusterV4)),
	}}
}

// The objects come from endpointstest, shared with the other mode's tests.
var (
	makeService = endpointstest.Service
	makeSlice   = endpointstest.Slice
)

// ep describes one endpoint for makeSlice.
type ep = endpointstest.Endpoint

// snapshotOf feeds objects into a fresh tracker of node1 and returns its snapshot.
func snapshotOf(t testing.TB, objects ...any) *endpoints.Snapshot {
	t.Helper()
	return endpointstest.Snapshot(t, testNode, objects...)
}

func nsName(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}
