package iptables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// limitedFake is the strict fake with iptables-nft's chain bound (xtables.ChainLimiter),
// at a size small tests reach.
type limitedFake struct {
	*xtablestest.Fake
	maxChains int
}

func (f *limitedFake) MaxChainsPerRestore() int { return f.maxChains }

// TestStreamedFullSync checks a full sync rendered restore by restore through the
// Proxier: it takes several restores, leaves the same tables as a kernel without the
// bound (one restore of Render's payload), reports Render's Stats and the bytes
// written, and its digest is of the restores' inputs concatenated, as docs/engine.md
// says. A second full sync (nothing stale, hooks in place) gives the same tables.
//
// mutation-checked: hashing each restore before it is applied and again after
// fails the digest; not adding streamed restores to PayloadBytes fails the bytes.
func TestStreamedFullSync(t *testing.T) {
	ctx := context.Background()
	snap := newSyntheticCluster(t, 30, 3).tracker.Snapshot()
	limited := &limitedFake{Fake: xtablestest.NewFake(ruleset.IPv4), maxChains: 10}
	whole := xtablestest.NewFake(ruleset.IPv4)
	pl, err := NewProxier(testConfig(), limited, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := NewProxier(testConfig(), whole, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for sync := 1; sync <= 2; sync++ {
		pl.RequestFullSync("test")
		pw.RequestFullSync("test")
		before := len(limited.Restores())
		res, err := pl.SyncDetailed(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		want, err := pw.SyncDetailed(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		restores := limited.Restores()[before:]
		if res.Restores != len(restores) || res.Restores < 10 || res.Payload != nil {
			t.Errorf("sync %d: %d restores reported, %d applied, payload kept: %v; want >= 10, streamed", sync, res.Restores, len(restores), res.Payload != nil)
		}
		if diff := cmp.Diff(want.Stats, res.Stats); diff != "" {
			t.Errorf("sync %d: Stats (-whole +streamed):\n%s", sync, diff)
		}
		hash := sha256.New()
		total := 0
		for _, r := range restores {
			hash.Write(r)
			total += len(r)
		}
		digest := pl.Status().Digest
		if digest.SHA256 != hex.EncodeToString(hash.Sum(nil)) || digest.Bytes != total || res.PayloadBytes != total || digest.Generation != snap.Generation {
			t.Errorf("sync %d: digest %+v, payload bytes %d; want the %d restores' %d bytes hashed, generation %d", sync, digest, res.PayloadBytes, len(restores), total, snap.Generation)
		}
		got, _ := limited.SaveAll(ctx)
		wantSave, _ := whole.SaveAll(ctx)
		if diff := cmp.Diff(string(wantSave), string(got)); diff != "" {
			t.Fatalf("sync %d: tables (-whole +streamed):\n%s", sync, diff)
		}
	}
	// For logs and the restore-size metric: the size, not the text.
	pl.RequestFullSync("test")
	out, err := pl.Sync(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Payloads) != 1 || out.Payloads[0].Data != nil || out.Payloads[0].Size() != pl.Status().Digest.Bytes {
		t.Errorf("payloads %+v, want one of %d bytes without its text", out.Payloads, pl.Status().Digest.Bytes)
	}
}
