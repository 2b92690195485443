package nftables

import (
	"testing"
)

// TestCheckWithLocalhostRejects runs the periodic check over a table with kube-proxy's
// localhost node-port rejects: their chains and rules are part of what the setup
// writes, so the check finds no drift in what was applied, and a rule removed from a
// reject chain is drift. (The reject map's elements are not among the containers the
// check compares.)
//
// mutation-checked: rendering the fixed chains the check compares against without
// the rejects (writeSetup clearing Config.LocalhostNodePortRejects) fails "applied".
func TestCheckWithLocalhostRejects(t *testing.T) {
	cfg := testConfig()
	cfg.LocalhostNodePortRejects = LocalhostNodePortRejects(true, false)
	p, fake, _ := newCheckedProxier(t, cfg)
	t.Run("applied", func(t *testing.T) {
		if res := mustCheck(t, p); res.FullSyncReason != "" {
			t.Errorf("drift in what was applied: %+v", res)
		}
	})
	t.Run("reject rule removed", func(t *testing.T) {
		fake.Table.Chains[localhostNodePortRejPref+"udp"].Rules = nil
		if res := mustCheck(t, p); res.FullSyncReason == "" {
			t.Errorf("no drift after the udp reject rule was removed: %+v", res)
		}
	})
}
