package ipvs

// IP plan for the tests in this package:
//   node "node-a" (zone-a): 192.168.0.10 (and 192.168.1.10 on a second network)
//   pod CIDR 10.244.0.0/16: 10.244.1.x on node-a, 10.244.2.x on node-b
//   service CIDR 10.96.0.0/16; external IPs 203.0.113.x; LB VIPs 198.51.100.x

import (
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
)

var (
	nodeIP  = netip.MustParseAddr("192.168.0.10")
	nodeIP2 = netip.MustParseAddr("192.168.1.10")
)

func testConfig(mod ...func(*Config)) *Config {
	cfg := &Config{FamilyConfig: node.FamilyConfig{
		Family:  v1.IPv4Protocol,
		Node:    endpoints.NodeTopology{Name: "node-a", Zone: "zone-a"},
		NodeIPs: []netip.Addr{nodeIP, nodeIP2},
		Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("10.244.0.0/16")),
	}}
	for _, m := range mod {
		m(cfg)
	}
	return cfg
}

func portName(ns, name, port string, proto v1.Protocol) endpoints.ServicePortName {
	return endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}, Port: port, Protocol: proto}
}

// makePort returns a TCP service port ns/name:p80 on clusterIP:80, modified by mod.
func makePort(ns, name, clusterIP string, mod ...func(*endpoints.ServicePort)) *endpoints.ServicePort {
	p := &endpoints.ServicePort{
		Name:       portName(ns, name, "p80", v1.ProtocolTCP),
		Port:       80,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(clusterIP)},
	}
	for _, m := range mod {
		m(p)
	}
	return p
}

// ep returns a ready endpoint ip:8080 on node.
func ep(ip, node string, mod ...func(*endpoints.Endpoint)) *endpoints.Endpoint {
	e := &endpoints.Endpoint{IP: netip.MustParseAddr(ip), Port: 8080, NodeName: node, Ready: true, Serving: true}
	for _, m := range mod {
		m(e)
	}
	return e
}

func unready(e *endpoints.Endpoint) { e.Ready, e.Serving = false, false }

func sortedEndpoints(eps ...*endpoints.Endpoint) []*endpoints.Endpoint {
	slices.SortFunc(eps, func(a, b *endpoints.Endpoint) int { return a.AddrPort().Compare(b.AddrPort()) })
	return eps
}

// snapshot builds a snapshot with every port changed.
func snapshot(gen uint64, ports map[*endpoints.ServicePort][]*endpoints.Endpoint) *endpoints.Snapshot {
	s := &endpoints.Snapshot{
		Services:   map[endpoints.ServicePortName]*endpoints.ServicePort{},
		Endpoints:  map[endpoints.ServicePortName][]*endpoints.Endpoint{},
		Changed:    map[endpoints.ServicePortName]struct{}{},
		Generation: gen,
	}
	for p, eps := range ports {
		s.Services[p.Name] = p
		if len(eps) > 0 {
			s.Endpoints[p.Name] = sortedEndpoints(eps...)
		}
		s.Changed[p.Name] = struct{}{}
	}
	return s
}

func key(proto v1.Protocol, addrPort string) Key {
	ap := netip.MustParseAddrPort(addrPort)
	return Key{Addr: ap.Addr(), Port: ap.Port(), Protocol: proto}
}
