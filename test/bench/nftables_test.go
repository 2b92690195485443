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
}

// Mutation-checked: reading the port from val[6:8] instead of val[4:6] fails "map
// element".
func TestDecodeNFTEndpoint(t *testing.T) {
	chain := NFTEndpointChain(7, "10.245.0.1")
	// A verdict's nested attributes: NFTA_VERDICT_CODE, then NFTA_VERDICT_CHAIN with
	// its NUL, as the kernel sends them.
	verdict := append([]byte{8, 0, 1, 0, 0xff, 0xff, 0xff, 0xfc, byte(len(chain) + 5), 0, 2, 0}, chain...)
	verdict = append(verdict, 0, 0, 0, 0)
	for _, tc := range []struct {
		name string
		val  []byte
		want string
	}{
		{"map element", []byte{10, 245, 0, 1, 0x1f, 0x90, 0, 0}, "10.245.0.1:8080"},
		{"vmap element", verdict, chain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeNFTEndpoint(tc.val)
			if got != tc.want {
				t.Errorf("decodeNFTEndpoint = %q, want %q", got, tc.want)
			}
			if !HasEndpoint([]string{"10.244.0.0:8080", got}, 7, "10.245.0.1") {
				t.Errorf("HasEndpoint(%q) = false", got)
			}
			if HasEndpoint([]string{got}, 7, "10.245.0.11") {
				t.Errorf("HasEndpoint(%q, 10.245.0.11) = true", got)
			}
		})
	}
}
