package iptables

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// TestChainNamesMatchKubeProxy pins the hashing against names read off a live
// kube-proxy v1.37.2 and kube-proxy's own test fixtures: runbooks and in-place adoption
// depend on these exact names.
func TestChainNamesMatchKubeProxy(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{
			name: "live kube-proxy, bench/svc-5:http",
			got:  ServiceChain(endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "bench", Name: "svc-5"}, Port: "http", Protocol: v1.ProtocolTCP}),
			want: "KUBE-SVC-XXWYPNZWN2YPOHBW",
		},
		{
			name: "kube-proxy fixture ns1/svc1:p80",
			got:  ServiceChain(endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns1", Name: "svc1"}, Port: "p80", Protocol: v1.ProtocolTCP}),
			want: "KUBE-SVC-XPGD46QRK7WJZT7O",
		},
		{
			name: "kube-proxy fixture endpoint ns1/svc1:p80 -> 10.180.0.1:80",
			got:  EndpointChain(endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns1", Name: "svc1"}, Port: "p80", Protocol: v1.ProtocolTCP}, "10.180.0.1:80"),
			want: "KUBE-SEP-SXIVWICOYRO3J4NJ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
}
