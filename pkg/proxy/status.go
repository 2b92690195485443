package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Status is what a Provider reports about itself for the daemon's state dump
// (/debug/state and SIGUSR1): what it knows to be in the kernel, whether its next
// sync will be full, and a digest of what it applied.
type Status struct {
	// Applied is the snapshot known to be in the kernel; nil when that is unknown (at
	// start, during a sync, after a failure).
	Applied *endpoints.Snapshot
	// LastFull is when the last successful full sync began; zero before the first.
	LastFull time.Time
	// NextFullReason is why the next sync will be full (a requested reason, the
	// previous sync failed, periodic), "" when it will be partial.
	NextFullReason string
	// Digest identifies what the Provider last applied, in the mode's own canonical
	// text; see AppliedDigest.
	Digest AppliedDigest
}

// AppliedDigest identifies the text a Provider last applied to the kernel, so that two
// dumps can be compared, or a dump checked against what a payload log or a fake
// kernel received. Each mode documents what its text covers (docs/engine.md):
// iptables mode, the last iptables-restore payload it wrote (a sync that has nothing
// to write keeps the previous one); IPVS mode, a canonical serialization of the whole
// state it holds applied (virtual and real servers, kube-ipvs0 addresses, ipset
// members) followed by the companion iptables-restore payload.
type AppliedDigest struct {
	// SHA256 is the hex SHA-256 of the text; "" before anything was applied.
	SHA256 string
	// Bytes is the text's length.
	Bytes int
	// Generation is the snapshot generation the text was applied for.
	Generation uint64
}

// DigestOf returns the digest of text applied for the snapshot generation.
func DigestOf(text []byte, generation uint64) AppliedDigest {
	sum := sha256.Sum256(text)
	return AppliedDigest{SHA256: hex.EncodeToString(sum[:]), Bytes: len(text), Generation: generation}
}
