package controller

import (
	"context"
	"strings"
	"sync"

	"sigs.k8s.io/knftables"
)

// recordingNFT is a knftables.Fake whose transactions are logged for scenario tests,
// and whose next Run calls can be made to fail (fail-nft).
type recordingNFT struct {
	*knftables.Fake
	log *opLog

	mu       sync.Mutex
	failures int
}

func newRecordingNFT(log *opLog) *recordingNFT {
	return &recordingNFT{Fake: knftables.NewFake(knftables.IPv4Family, "kube-proxy"), log: log}
}

// Run logs and applies tx, or fails without applying it when a failure is pending.
func (r *recordingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	r.log.add("nft -f:\n" + strings.TrimRight(tx.String(), "\n"))
	r.mu.Lock()
	fail := r.failures > 0
	if fail {
		r.failures--
	}
	r.mu.Unlock()
	if fail {
		return errInjected
	}
	return r.Fake.Run(ctx, tx)
}

// failNext makes the next n Run calls fail.
func (r *recordingNFT) failNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures += n
}

// deleteTable removes the table without logging, as `nft flush ruleset` would.
func (r *recordingNFT) deleteTable(ctx context.Context) error {
	tx := r.Fake.NewTransaction()
	tx.Delete(&knftables.Table{})
	return r.Fake.Run(ctx, tx)
}
