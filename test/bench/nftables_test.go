package bench

import (
	"strings"
	"testing"
)

// The expected names are the ones kube-proxy v1.37.2's nftables proxier spells out
// (pkg/proxy/nftables/proxier.go's comments, proxier_test.go), so that the benchmark
// polls the chains the proxies really write. Mutation-checked: encoding with
// base32.HexEncoding instead of StdEncoding fails this test.
func TestNFTChainBase(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"ns1/svc1/tcp/p80", "ULMVA6XW-ns1/svc1/tcp/p80"},
		{"ns1/svc1/tcp/p80__10.180.0.1/80", "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nftChainBase(tc.name); got != tc.want {
				t.Errorf("nftChainBase(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestNFTBenchChains(t *testing.T) {
	if got, want := NFTServiceChain(7), "service-"; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "-bench/svc-00007/tcp/http") {
		t.Errorf("NFTServiceChain(7) = %q", got)
	}
	if got := NFTEndpointChain(7, "10.245.0.1"); !strings.HasPrefix(got, "endpoint-") || !strings.HasSuffix(got, "-bench/svc-00007/tcp/http__10.245.0.1/8080") {
		t.Errorf("NFTEndpointChain(7, 10.245.0.1) = %q", got)
	}
	for _, tc := range []struct {
		name, listing string
		want          int
		has           bool // dispatches to 10.245.0.1
	}{
		// As kube-proxy v1.37.2 lists them (the map form seen on the testbed).
		{"map", "table ip kube-proxy {\n\tchain x {\n\t\tmeta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.0.0 . 8080, 1 : 10.245.0.1 . 8080 }\n\t}\n}\n", 2, true},
		{"map without it", "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.0.0 . 8080, 1 : 10.245.0.11 . 8080 }\n", 2, false},
		{"single", "meta l4proto tcp dnat to 10.245.0.1:8080\n", 1, true},
		{"vmap", "numgen random mod 2 vmap { 0 : goto endpoint-A, 1 : goto " + NFTEndpointChain(7, "10.245.0.1") + " }\n", 2, true},
		{"empty", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CountNFTEndpoints(tc.listing); got != tc.want {
				t.Errorf("CountNFTEndpoints = %d, want %d", got, tc.want)
			}
			if got := NFTHasEndpoint(tc.listing, 7, "10.245.0.1"); got != tc.has {
				t.Errorf("NFTHasEndpoint = %v, want %v", got, tc.has)
			}
		})
	}
}
