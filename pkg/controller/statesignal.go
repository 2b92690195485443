package controller

import (
	"context"
	"os"
	"os/signal"
	"sync"

	"k8s.io/klog/v2"
)

// startStateDumps logs the state dump each time the process receives one of
// dumpSignals (SIGUSR1), until the returned stop function is called. It is installed
// by Run itself, so that every way of starting the daemon gets it. (Without it, Go
// catches SIGUSR1 and does nothing.)
func (c *Controller) startStateDumps(ctx context.Context) (stop func()) {
	if len(dumpSignals) == 0 {
		return func() {}
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, dumpSignals...)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.logStateOn(ctx, signals) })
	return func() {
		signal.Stop(signals)
		cancel()
		wg.Wait()
	}
}

// logStateOn logs the state dump for each value received from signals, until ctx
// ends. Signals that arrive while a dump is being written are coalesced into one
// more dump.
func (c *Controller) logStateOn(ctx context.Context, signals <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
			c.logState(ctx)
		}
	}
}

// logState writes the state dump as one log entry at verbosity 0: the JSON document
// is the value of "state" (klog's text format writes a struct value as one line of
// JSON; the JSON format nests it).
func (c *Controller) logState(ctx context.Context) {
	klog.FromContext(ctx).Info("State dump", "state", c.State())
}
