package restore

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestHostileManifestLoadsIntoTheKernel renders testdata/hostile.yaml — the hostile
// cases of docs/reliability.md, with values the API server refuses (zoned and
// wrong-family endpoint addresses, odd and IPv4-mapped source ranges, an external and
// a load-balancer IP equal to the node IP, duplicate port names, a quote in a
// namespace) and the longest names it allows — and loads each family's payload into
// the real iptables-restore of both backends in a fresh network namespace. The strict
// model (pkg/xtables/ruleset) behind FuzzRenderApply is only as good as its agreement
// with the kernel; this is that check for the hostile cases.
//
// mutation-checked: without the zone check in pkg/endpoints/slice.go the ipv6 payloads
// are refused ("host/network `fe80::1%eth0' not found").
func TestHostileManifestLoadsIntoTheKernel(t *testing.T) {
	requireRoot(t)
	bin := buildSwitchyard(t)
	for _, family := range []string{"ipv4", "ipv6"} {
		cmd := exec.Command(bin, "dry-run", "-f", "testdata/hostile.yaml", "--node-ip", "192.168.0.2,fd00:192::2",
			"--cluster-cidr", "10.244.0.0/16,fd00:244::/56", "--ip-family", family)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		payload, err := cmd.Output()
		if err != nil {
			t.Fatalf("dry-run %s: %v\n%s", family, err, stderr.String())
		}
		// The skipped values are reported, not silently dropped.
		for _, want := range []string{`"::ffff:0:0/95"`, `"fe80::1%eth0": zoned address not allowed`, `sh"op/bad-names: invalid namespace or name`} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("dry-run %s does not report %s:\n%s", family, want, stderr.String())
			}
		}
		for _, backend := range []string{"nft", "legacy"} {
			t.Run(family+"/"+backend, func(t *testing.T) {
				prefix := "iptables-"
				if family == "ipv6" {
					prefix = "ip6tables-"
				}
				ns := netns(t, "h"+family[2:]+backend)
				restore := prefix + backend + "-restore"
				inNetns(t, ns, payload, restore, "--test", "--noflush")
				inNetns(t, ns, payload, restore, "-w", "5", "--noflush")
				saved := inNetns(t, ns, nil, prefix+backend+"-save")
				// The long-named Service has its endpoint in IPv6 only: the longest
				// comment there ("<63>/<63>:<63> -> [<IPv6>]:65535"), a REJECT in IPv4.
				long := strings.Repeat("y", 62) + " -> [fd00:244:ffff:ffff:ffff:ffff:ffff:fff1]:65535"
				if family == "ipv4" {
					long = strings.Repeat("y", 62) + " has no endpoints"
				}
				for _, want := range []string{`"shop/odd:dns loadbalancer IP"`, "--seconds 86400", long} {
					if !strings.Contains(saved, want) {
						t.Errorf("the kernel's rules lack %q", want)
					}
				}
			})
		}
	}
}
