package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// testNFTablesAPICalls runs Switchyard in nftables mode on node-4, under the
// restricted identity like every daemon of the suite, until it has listed and
// watched the ServiceCIDR objects (the calls only that mode makes), so that "least
// privilege" sees rbac.yaml's servicecidrs grant used; then it stops the daemon and
// deletes its tables, which node-4's later subtests (iptables mode) must not see.
// mutation-checked: removing the servicecidrs rule from rbac.yaml fails "least
// privilege" (the daemon asked for what rbac.yaml does not grant); not running this
// subtest fails it too (a grant no daemon used).
func (s *suite) testNFTablesAPICalls(t *testing.T) {
	ctx := t.Context()
	proxy := s.cluster.AddSwitchyard(t, s.node4, testbed.SwitchyardOptions{ExtraArgs: []string{"--proxy-mode", "nftables"}})
	defer func() {
		if err := proxy.Process.Stop(); err != nil {
			t.Error(err)
		}
		for _, family := range []string{"ip", "ip6"} {
			if out, err := s.node4.Exec(ctx, "nft", "delete", "table", family, "kube-proxy"); err != nil {
				t.Errorf("nft delete table %s kube-proxy on node-4: %v: %s", family, err, out)
			}
		}
	}()
	var seen []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		events, err := s.cluster.AuditEvents()
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, e := range events {
			if e.User == s.cluster.RestrictedUser && e.UserAgent == "switchyard" && e.Resource == "servicecidrs" && e.Decision == "allow" && !slices.Contains(seen, e.Verb) {
				seen = append(seen, e.Verb)
			}
		}
		if slices.Contains(seen, "watch") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("in 30 s the nftables-mode daemon made no allowed watch of servicecidrs (allowed verbs seen: %v)", seen)
}
