package controller

import (
	"context"
	"sync"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// conntrackCleaner runs the stale UDP conntrack cleanup off the sync loop, one at a
// time, always from the latest applied snapshot: a cleanup that reads a large table
// (one kernel walk per frontend, 0.1–0.4 s at 250k entries here, docs/reliability.md)
// never delays the next sync, and requests that arrive while one runs are coalesced
// into the next (kubernetes#129982: kube-proxy's cleanup blocked its syncs).
type conntrackCleaner struct {
	mu      sync.Mutex
	next    *cleanupJob
	running bool
	wg      sync.WaitGroup
}

// cleanupJob is one applied snapshot to clean up after.
type cleanupJob struct {
	snap  *endpoints.Snapshot
	facts node.Facts
}

// requestCleanup asks for a cleanup after snap was applied, and returns at once.
func (c *Controller) requestCleanup(ctx context.Context, snap *endpoints.Snapshot, facts node.Facts) {
	cl := &c.cleaner
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.next = &cleanupJob{snap: snap, facts: facts}
	if cl.running {
		return // the running worker picks it up when it is done
	}
	cl.running = true
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		for {
			cl.mu.Lock()
			job := cl.next
			cl.next = nil
			if job == nil {
				cl.running = false
				cl.mu.Unlock()
				return
			}
			cl.mu.Unlock()
			c.cleanConntrack(ctx, job.snap, job.facts)
		}
	}()
}

// waitConntrack waits until no cleanup is running or requested: Run calls it before
// returning, tests after a sync.
func (c *Controller) waitConntrack() { c.cleaner.wg.Wait() }
