package node

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

// TestNodePortsNameLoopback follows kube-proxy v1.37.2's ContainsExplicitLoopback
// (pkg/proxy/util/nodeport_addresses.go: a CIDR of the family whose parsed, masked
// address is loopback).
//
// mutation-checked: testing Contains(127.0.0.1) instead of the network address fails
// "all" and "0.0.0.0/0"; ignoring the family fails "IPv4 loopback, IPv6 asked".
func TestNodePortsNameLoopback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		addrs  []string
		family v1.IPFamily
		want   bool
	}{
		{"unset", nil, v1.IPv4Protocol, false},
		{"primary", []string{"primary"}, v1.IPv4Protocol, false},
		{"localhost keyword, IPv4", []string{"primary", "localhost"}, v1.IPv4Protocol, true},
		{"localhost keyword, IPv6", []string{"localhost"}, v1.IPv6Protocol, true},
		{"127.0.0.0/8", []string{"10.0.0.0/8", "127.0.0.0/8"}, v1.IPv4Protocol, true},
		{"one loopback address", []string{"127.0.0.1/32"}, v1.IPv4Protocol, true},
		{"::1/128", []string{"::1/128"}, v1.IPv6Protocol, true},
		{"IPv4 loopback, IPv6 asked", []string{"127.0.0.0/8"}, v1.IPv6Protocol, false},
		{"all", []string{"all"}, v1.IPv4Protocol, false},
		{"0.0.0.0/0", []string{"0.0.0.0/0"}, v1.IPv4Protocol, false},
		{"a wider range holding loopback", []string{"96.0.0.0/3"}, v1.IPv4Protocol, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NodePortsNameLoopback(tc.addrs, tc.family); got != tc.want {
				t.Errorf("NodePortsNameLoopback(%q, %s) = %v, want %v", tc.addrs, tc.family, got, tc.want)
			}
		})
	}
}
