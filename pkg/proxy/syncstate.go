package proxy

import (
	"sync"
	"time"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Reasons for a full sync, as logged and as Result.Reason.
const (
	ReasonStart    = "start: no state known to be applied"
	ReasonFailed   = "the previous sync failed"
	ReasonHistory  = "the snapshot does not know what changed since the applied one"
	ReasonPeriodic = "periodic"
)

// SyncState is one Provider's full-sync state machine: the snapshot last applied, when
// the last full sync ran, and whether the next must be full and why. Every mode keeps
// one, so the decision is made the same way and logged with the same reasons.
//
// A sync calls Begin, then exactly one of Succeeded or Failed. RequestFull may be
// called from any goroutine at any time. The zero value is not usable; use
// NewSyncState.
type SyncState struct {
	period time.Duration
	now    func() time.Time

	mu sync.Mutex
	// applied is the snapshot whose state is known to be in the kernel; nil when
	// unknown (at start, during a sync, after a failure).
	applied  *endpoints.Snapshot
	lastFull time.Time
	// needFull is the reason a full sync was requested, "" for none.
	needFull string
	// inFull is set while a full sync is in progress; fullStarted is when it began.
	inFull      bool
	fullStarted time.Time
}

// NewSyncState returns the state of a Provider that has applied nothing yet. A full
// sync is due every period (0: never periodically); now is the clock (nil: time.Now).
func NewSyncState(period time.Duration, now func() time.Time) *SyncState {
	if now == nil {
		now = time.Now
	}
	return &SyncState{period: period, now: now, needFull: ReasonStart}
}

// Decision is how one sync is to be done.
type Decision struct {
	// Full is true for a full sync; Reason says why.
	Full   bool
	Reason string
	// Base is the snapshot the kernel holds, which a partial sync edits; nil for a
	// full sync.
	Base *endpoints.Snapshot
	// Changed lists the service ports that may differ between Base and the new
	// snapshot, in a fixed order; nil for a full sync.
	Changed []endpoints.ServicePortName
	// Started is when Begin was called.
	Started time.Time
}

// Begin decides how to sync snap and marks the kernel's state unknown until Succeeded.
// A partial sync is computed against the snapshot really applied, whatever other
// snapshots were taken since.
func (s *SyncState) Begin(snap *endpoints.Snapshot) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := Decision{Started: s.now()}
	switch {
	case s.needFull != "":
		d.Reason = s.needFull
	case s.applied == nil:
		d.Reason = ReasonFailed // a sync began and neither succeeded nor failed
	case s.period > 0 && d.Started.Sub(s.lastFull) >= s.period:
		d.Reason = ReasonPeriodic
	default:
		changed, ok := snap.SortedChangedSince(s.applied)
		if !ok {
			d.Reason = ReasonHistory
			break
		}
		d.Base, d.Changed = s.applied, changed
	}
	d.Full = d.Reason != ""
	s.needFull = ""
	s.applied = nil
	s.inFull, s.fullStarted = d.Full, d.Started
	return d
}

// Succeeded records that snap, synced as d decided, is now in the kernel.
func (s *SyncState) Succeeded(snap *endpoints.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFull {
		s.lastFull = s.fullStarted
	}
	s.inFull = false
	// A full sync requested while this one ran stays requested: needFull is only
	// cleared by Begin.
	s.applied = snap
}

// Failed records that the sync in progress failed: nothing is assumed about the
// kernel, and the next sync is full.
func (s *SyncState) Failed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFull = false
	s.applied = nil
	if s.needFull == "" {
		s.needFull = ReasonFailed
	}
}

// RequestFull makes the next sync full, with reason (the first request since the
// last sync wins; requests during a sync apply to the next one).
func (s *SyncState) RequestFull(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.needFull == "" {
		s.needFull = reason
	}
}

// Applied returns the snapshot known to be in the kernel, nil if none.
func (s *SyncState) Applied() *endpoints.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Status returns the state machine's part of a Provider's Status: the applied
// snapshot, the last full sync, and the reason the next sync will be full, if it
// will (including a periodic one that is due).
func (s *SyncState) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Applied: s.applied, LastFull: s.lastFull, NextFullReason: s.needFull}
	if st.NextFullReason == "" && s.applied != nil && s.period > 0 && s.now().Sub(s.lastFull) >= s.period {
		st.NextFullReason = ReasonPeriodic
	}
	return st
}
