package runner

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// Every test here drives the Runner with a fake clock and learns when the loop is idle
// through the blocked hook, so no test sleeps to synchronise. The only real-time bound is
// failAfter, which turns a bug that would hang the test into a failure.
const (
	minInterval = 1 * time.Second
	maxInterval = 30 * time.Second
	failAfter   = 10 * time.Second
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness runs a Runner whose fn reports each call on calls and then returns whatever
// the test sends on results.
type harness struct {
	t       *testing.T
	clock   *testingclock.FakeClock
	runner  *Runner
	calls   chan time.Time // the fake time at which fn started
	results chan error
	waits   chan time.Time // the wake time each time the loop goes idle
	cancel  context.CancelFunc
	done    chan error
	// inFn tracks fn's concurrency, which must never exceed 1.
	inFn atomic.Int32
}

func newHarness(t *testing.T, minI, maxI time.Duration, opts ...Option) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		clock:   testingclock.NewFakeClock(t0),
		calls:   make(chan time.Time),
		results: make(chan error),
		// Large enough that the loop never blocks on the hook: how many times it goes
		// idle during a burst of requests depends on scheduling.
		waits: make(chan time.Time, 1000),
		done:  make(chan error, 1),
	}
	fn := func(ctx context.Context) error {
		if h.inFn.Add(1) != 1 {
			t.Errorf("fn runs concurrently with itself")
		}
		defer h.inFn.Add(-1)
		// A test that failed stops reading calls; ctx then ends with its cleanup.
		select {
		case h.calls <- h.clock.Now():
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-h.results:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.runner = New("test", fn, minI, maxI, append([]Option{WithClock(h.clock)}, opts...)...)
	h.runner.blocked = func(wake time.Time) { h.waits <- wake }
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.runner.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		<-h.done
	})
}

// nextWait returns the wake time of the loop's next idle period.
func (h *harness) nextWait() time.Time {
	h.t.Helper()
	select {
	case w := <-h.waits:
		return w
	case <-time.After(failAfter):
		h.t.Fatalf("runner never went idle")
	}
	return time.Time{}
}

// waitIdle waits until the loop is idle until want. Earlier idle periods are skipped:
// each request wakes the loop, and a burst may wake it any number of times.
func (h *harness) waitIdle(want time.Time) {
	h.t.Helper()
	deadline := time.After(failAfter)
	for {
		select {
		case w := <-h.waits:
			if w.Equal(want) {
				return
			}
		case <-deadline:
			h.t.Fatalf("runner never went idle until %v", want.Sub(t0))
		}
	}
}

// expectRun waits for fn to start, checks the fake time it started at, and makes it
// return err. The idle periods before the run are discarded, so that nextWait afterwards
// returns the one right after this run.
func (h *harness) expectRun(at time.Time, err error) {
	h.t.Helper()
	select {
	case got := <-h.calls:
		if !got.Equal(at) {
			h.t.Errorf("fn ran at t0+%v, want t0+%v", got.Sub(t0), at.Sub(t0))
		}
	case <-time.After(failAfter):
		h.t.Fatalf("fn did not run at t0+%v", at.Sub(t0))
	}
	for len(h.waits) > 0 {
		<-h.waits
	}
	h.results <- err
}

// expectNoRun checks that fn has not been called. It is only meaningful while the loop
// is known to be idle, which callers establish with nextWait or waitIdle.
func (h *harness) expectNoRun() {
	h.t.Helper()
	select {
	case got := <-h.calls:
		h.t.Fatalf("fn ran unexpectedly at t0+%v", got.Sub(t0))
	default:
	}
}

func TestRunsAtOnceWhenIdle(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	// Run does not call fn by itself at start.
	if got, want := h.nextWait(), t0.Add(maxInterval); !got.Equal(want) {
		t.Fatalf("first idle until t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
	h.expectNoRun()

	h.runner.Request()
	h.expectRun(t0, nil)
	h.waitIdle(t0.Add(maxInterval))

	// After a quiet period longer than minInterval, a request runs at once.
	h.clock.Step(3 * minInterval)
	h.runner.Request()
	h.expectRun(t0.Add(3*minInterval), nil)
}

func TestZeroMinIntervalRunsEveryRequest(t *testing.T) {
	h := newHarness(t, 0, maxInterval)
	h.start()
	h.nextWait()
	for range 3 {
		h.runner.Request()
		h.expectRun(t0, nil)
		h.waitIdle(t0.Add(maxInterval))
	}
}

func TestCoalescesBurst(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	h.expectRun(t0, nil)
	h.waitIdle(t0.Add(maxInterval))

	for range 10 {
		h.runner.Request()
	}
	h.waitIdle(t0.Add(minInterval))
	h.expectNoRun()
	h.clock.Step(minInterval)
	h.expectRun(t0.Add(minInterval), nil)
	// One run satisfied all ten requests: the loop goes back to waiting for the
	// periodic run, not for another minimum interval.
	if got, want := h.nextWait(), t0.Add(minInterval+maxInterval); !got.Equal(want) {
		t.Fatalf("after the burst idle until t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
	h.expectNoRun()
}

func TestRespectsMinInterval(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	h.expectRun(t0, nil)
	h.waitIdle(t0.Add(maxInterval))

	h.clock.Step(minInterval / 2)
	h.runner.Request()
	h.waitIdle(t0.Add(minInterval))
	h.expectNoRun()
	// One nanosecond short of the minimum interval: still nothing.
	h.clock.Step(minInterval/2 - time.Nanosecond)
	h.expectNoRun()
	h.clock.Step(time.Nanosecond)
	h.expectRun(t0.Add(minInterval), nil)
}

func TestRequestDuringRunRunsAgain(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	// fn is now blocked reporting its call; a request made while it runs may concern
	// state it has already read, so it must cause a second run.
	got := <-h.calls
	if !got.Equal(t0) {
		t.Fatalf("fn ran at t0+%v, want t0", got.Sub(t0))
	}
	h.runner.Request()
	h.results <- nil
	h.waitIdle(t0.Add(minInterval))
	h.clock.Step(minInterval)
	h.expectRun(t0.Add(minInterval), nil)
}

func TestPeriodicRunWithoutRequests(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	for i := 1; i <= 3; i++ {
		want := t0.Add(time.Duration(i) * maxInterval)
		if got := h.nextWait(); !got.Equal(want) {
			t.Fatalf("idle until t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
		}
		h.clock.Step(maxInterval - time.Nanosecond)
		h.expectNoRun()
		h.clock.Step(time.Nanosecond)
		h.expectRun(want, nil)
	}
}

func TestPeriodicRunCountsFromLastRun(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.clock.Step(10 * time.Second)
	h.runner.Request()
	h.expectRun(t0.Add(10*time.Second), nil)
	if got, want := h.nextWait(), t0.Add(10*time.Second+maxInterval); !got.Equal(want) {
		t.Fatalf("idle until t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
}

func TestNoPeriodicRunWhenMaxIntervalIsZero(t *testing.T) {
	h := newHarness(t, minInterval, 0)
	h.start()
	if got := h.nextWait(); !got.IsZero() {
		t.Fatalf("idle until t0+%v, want no timer at all", got.Sub(t0))
	}
	if h.clock.HasWaiters() {
		t.Fatalf("runner set a timer although it has nothing to wait for")
	}
	h.runner.Request()
	h.expectRun(t0, nil)
	if got := h.nextWait(); !got.IsZero() {
		t.Fatalf("after a run idle until t0+%v, want no timer at all", got.Sub(t0))
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	errSync := errors.New("iptables-restore failed")
	h := newHarness(t, minInterval, 10*time.Second, WithRetryInterval(2*time.Second))
	h.start()
	h.nextWait()
	h.runner.Request()

	// Failures retry after 2s, 4s, 8s, then the 10s cap; a success returns to the
	// periodic schedule and resets the backoff.
	now := t0
	h.expectRun(now, errSync)
	for _, delay := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		want := now.Add(delay)
		if got := h.nextWait(); !got.Equal(want) {
			t.Fatalf("retry at t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
		}
		h.clock.Step(delay)
		now = want
		h.expectRun(now, errSync)
	}
	if got, want := h.nextWait(), now.Add(10*time.Second); !got.Equal(want) {
		t.Fatalf("retry at t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
	h.clock.Step(10 * time.Second)
	now = now.Add(10 * time.Second)
	h.expectRun(now, nil)
	h.waitIdle(now.Add(10 * time.Second))
	// The next failure starts again from the retry interval.
	h.runner.Request()
	h.clock.Step(minInterval)
	now = now.Add(minInterval)
	h.expectRun(now, errSync)
	if got, want := h.nextWait(), now.Add(2*time.Second); !got.Equal(want) {
		t.Fatalf("retry at t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
}

func TestRetryDefaultsToMinInterval(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	h.expectRun(t0, errors.New("boom"))
	if got, want := h.nextWait(), t0.Add(minInterval); !got.Equal(want) {
		t.Fatalf("retry at t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
}

func TestRequestDuringBackoffRunsAfterMinInterval(t *testing.T) {
	// New state may be what fixes the failure, so a request does not wait out the
	// backoff; it is still held to the minimum interval.
	h := newHarness(t, minInterval, maxInterval, WithRetryInterval(20*time.Second))
	h.start()
	h.nextWait()
	h.runner.Request()
	h.expectRun(t0, errors.New("boom"))
	h.waitIdle(t0.Add(20 * time.Second))
	h.runner.Request()
	h.waitIdle(t0.Add(minInterval))
	h.clock.Step(minInterval)
	h.expectRun(t0.Add(minInterval), nil)
}

func TestStopsOnContextCancel(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
		h.done <- err // for the cleanup
	case <-time.After(failAfter):
		t.Fatalf("Run did not return after cancel")
	}
	if h.clock.HasWaiters() {
		t.Errorf("Run left its timer behind")
	}
	h.runner.Request() // must not block with nobody running
}

func TestStopsOnContextCancelDuringRun(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	<-h.calls
	// fn sees the cancellation through its context and returns; Run must not start
	// another run after it.
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
		h.done <- err
	case <-time.After(failAfter):
		t.Fatalf("Run did not return after cancel")
	}
	h.expectNoRun()
}

func TestSecondRunIsRefused(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	err := h.runner.Run(context.Background())
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run returned %v, want ErrAlreadyRunning", err)
	}
}

func TestNewClampsMaxInterval(t *testing.T) {
	r := New("x", func(context.Context) error { return nil }, 5*time.Second, time.Second)
	if r.maxInterval != 5*time.Second {
		t.Errorf("maxInterval = %v, want it raised to minInterval 5s", r.maxInterval)
	}
	r = New("x", func(context.Context) error { return nil }, 0, 0)
	if r.retryInterval != defaultRetryInterval {
		t.Errorf("retryInterval = %v, want the %v floor", r.retryInterval, defaultRetryInterval)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		retry    time.Duration
		max      time.Duration
		failures int
		want     time.Duration
	}{
		{name: "first failure", retry: time.Second, max: time.Minute, failures: 1, want: time.Second},
		{name: "doubles", retry: time.Second, max: time.Minute, failures: 4, want: 8 * time.Second},
		{name: "capped", retry: time.Second, max: time.Minute, failures: 10, want: time.Minute},
		{name: "no cap without max interval", retry: time.Second, max: 0, failures: 5, want: 16 * time.Second},
		{name: "never overflows", retry: time.Second, max: 0, failures: 1000, want: time.Second << 33},
		{name: "retry above max", retry: time.Hour, max: time.Minute, failures: 1, want: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New("x", nil, 0, tc.max, WithRetryInterval(tc.retry))
			if got := r.backoff(tc.failures); got != tc.want {
				t.Errorf("backoff(%d) = %v, want %v", tc.failures, got, tc.want)
			}
			if got := r.backoff(tc.failures); got <= 0 {
				t.Errorf("backoff(%d) = %v, want positive", tc.failures, got)
			}
		})
	}
}

// TestNeverOverlapsWithRealClock hammers Request from several goroutines against the real
// clock, with no minimum interval, and checks that fn never overlaps itself. It stops
// after a fixed number of runs, so it needs no sleeping either.
func TestNeverOverlapsWithRealClock(t *testing.T) {
	const wantRuns = 200
	var inFn, runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fn := func(context.Context) error {
		if inFn.Add(1) != 1 {
			t.Errorf("fn runs concurrently with itself")
		}
		defer inFn.Add(-1)
		if runs.Add(1) == wantRuns {
			cancel()
		}
		return nil
	}
	r := New("real", fn, 0, time.Hour)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r.Request()
			}
		})
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(failAfter):
		t.Fatalf("only %d runs", runs.Load())
	}
	wg.Wait()
}

// The tests below cover RequestWithin: a request that may wait up to a deadline for the
// change that completes it, without ever adding a run or bringing runs closer together.

func TestRequestWithinWaitsUntilItsDeadline(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.clock.Step(3 * minInterval) // idle for longer than the minimum interval
	now := t0.Add(3 * minInterval)

	h.runner.RequestWithin(minInterval)
	// mutation-checked: ignoring due in nextRun (earlier(lastStart+minInterval)) runs
	// at once and fails here (and in the other RequestWithin tests).
	h.waitIdle(now.Add(minInterval))
	h.expectNoRun()
	h.clock.Step(minInterval - time.Nanosecond)
	h.expectNoRun()
	h.clock.Step(time.Nanosecond)
	h.expectRun(now.Add(minInterval), nil)
	// The run satisfied it: the loop goes back to the periodic run.
	if got, want := h.nextWait(), now.Add(minInterval+maxInterval); !got.Equal(want) {
		t.Fatalf("after the run idle until t0+%v, want t0+%v", got.Sub(t0), want.Sub(t0))
	}
}

func TestRequestCutsRequestWithinShort(t *testing.T) {
	// A new Service (RequestWithin) followed by its EndpointSlice (Request): one run,
	// as soon as the slice arrives, and the minimum interval counts from it.
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.clock.Step(3 * minInterval)
	now := t0.Add(3 * minInterval)

	h.runner.RequestWithin(minInterval)
	h.waitIdle(now.Add(minInterval))
	h.clock.Step(minInterval / 10)
	// mutation-checked: Pending preferring a RequestWithin deadline over a pending
	// Request waits until now+minInterval and fails here.
	h.runner.Request()
	h.expectRun(now.Add(minInterval/10), nil)
	h.waitIdle(now.Add(minInterval/10 + maxInterval))

	// Burst semantics unchanged: the next request waits out the minimum interval.
	h.runner.Request()
	h.waitIdle(now.Add(minInterval/10 + minInterval))
	h.expectNoRun()
	h.clock.Step(minInterval)
	h.expectRun(now.Add(minInterval/10+minInterval), nil)
}

func TestRequestWithinNeverDelaysAPendingRequest(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	h.expectRun(t0, nil)
	h.waitIdle(t0.Add(maxInterval))

	// During the minimum interval: a plain request is due at t0+minInterval, and a
	// later RequestWithin with a far deadline must not push it back.
	h.clock.Step(minInterval / 2)
	h.runner.Request()
	h.runner.RequestWithin(5 * minInterval)
	// mutation-checked: Pending preferring a RequestWithin deadline over a pending
	// Request fails here.
	h.waitIdle(t0.Add(minInterval))
	h.clock.Step(minInterval / 2)
	h.expectRun(t0.Add(minInterval), nil)
}

func TestRequestWithinKeepsTheEarliestDeadline(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.clock.Step(3 * minInterval)
	now := t0.Add(3 * minInterval)

	h.runner.RequestWithin(minInterval)
	h.waitIdle(now.Add(minInterval))
	h.clock.Step(minInterval / 2)
	// A second new Service: its deadline is later, the first one's holds.
	// mutation-checked: always overwriting due (no "due.Before(r.due)" check) moves the
	// run to now+minInterval/2+3*minInterval and fails here.
	h.runner.RequestWithin(3 * minInterval)
	h.waitIdle(now.Add(minInterval))
	h.clock.Step(minInterval / 2)
	h.expectRun(now.Add(minInterval), nil)
}

func TestRequestWithinRespectsMinInterval(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	h.expectRun(t0, nil)
	h.waitIdle(t0.Add(maxInterval))

	// A deadline inside the minimum interval does not bring the run forward.
	h.runner.RequestWithin(minInterval / 10)
	h.waitIdle(t0.Add(minInterval))
	h.clock.Step(minInterval / 10)
	h.expectNoRun()
	h.clock.Step(minInterval - minInterval/10)
	h.expectRun(t0.Add(minInterval), nil)
}

func TestRequestWithinDuringRunRunsAgain(t *testing.T) {
	h := newHarness(t, minInterval, maxInterval)
	h.start()
	h.nextWait()
	h.runner.Request()
	if got := <-h.calls; !got.Equal(t0) {
		t.Fatalf("fn ran at t0+%v, want t0", got.Sub(t0))
	}
	// Made while fn runs: fn may have read the state before the change.
	h.runner.RequestWithin(2 * minInterval)
	h.results <- nil
	h.waitIdle(t0.Add(2 * minInterval))
	h.clock.Step(2 * minInterval)
	h.expectRun(t0.Add(2*minInterval), nil)
}
