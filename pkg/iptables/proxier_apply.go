package iptables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// maxChainsPerRestore is the backend's bound on the chains one restore declares (see
// xtables.ChainLimiter), 0 for none.
func (p *Proxier) maxChainsPerRestore() int {
	if limiter, ok := p.ipt.(xtables.ChainLimiter); ok {
		return limiter.MaxChainsPerRestore()
	}
	return 0
}

// apply runs the restores of one sync, filling res's payload figures and stats, and
// returns the digest of what it applied (without its generation).
//
// A payload that declares many chains goes in several restores where the backend
// needs it (see xtables.ChainLimiter): a cold full sync, and partial syncs that add
// many services at once (a burst of new Services, or the rest of them when the first
// full sync ran before every informer event had been handled). A full sync is then
// rendered restore by restore (RenderRestores), and its digest is of the restores'
// inputs, concatenated in order, hashed as they are applied: the whole text exists
// nowhere else. A payload rendered whole (a partial sync, or one that fits a restore)
// is split from its text, and its digest is of that text, as before.
func (p *Proxier) apply(ctx context.Context, restores *Restores, res *SyncResult) (proxy.AppliedDigest, error) {
	streamed := restores.plan != nil
	if !streamed {
		res.Payload, res.PayloadBytes = restores.Payload, len(restores.Payload)
	}
	hash := sha256.New()
	var err error
	for payload := range restores.All() {
		res.Restores++
		if streamed {
			res.PayloadBytes += len(payload)
		}
		if err = p.ipt.Restore(ctx, payload); err != nil {
			break
		}
		if streamed {
			hash.Write(payload)
		}
	}
	res.Stats = restores.Stats
	if err != nil {
		return proxy.AppliedDigest{}, err
	}
	if !streamed {
		return proxy.DigestOf(restores.Payload, 0), nil
	}
	return proxy.AppliedDigest{SHA256: hex.EncodeToString(hash.Sum(nil)), Bytes: res.PayloadBytes}, nil
}
