// Package runner runs a sync function at a bounded frequency: as soon as it is asked to,
// but never more often than a minimum interval, and at least once per maximum interval
// even when nobody asks. It plays the part of kube-proxy's async.BoundedFrequencyRunner,
// written afresh with a simpler model: one goroutine, one loop, no token bucket.
//
// Informer callbacks call Request, which never blocks; the proxier's sync function is
// the Runner's fn. Because fn only ever runs on Run's goroutine it never overlaps itself,
// so the sync path needs no lock of its own against re-entry.
package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Runner calls fn when asked to, at a bounded frequency. Create one with New and start
// it with Run. The zero value is not usable.
type Runner struct {
	name          string
	fn            func(ctx context.Context) error
	minInterval   time.Duration
	maxInterval   time.Duration
	retryInterval time.Duration
	clock         clock.Clock

	// requests holds at most one wake-up for the loop: Request never blocks, and any
	// number of requests between two runs collapse into one.
	requests chan struct{}
	// immediate records a pending Request; mu guards due and hasDue, the deadline of
	// pending RequestWithin calls (the earliest of them). Request stays lock-free:
	// informer callbacks call it for every event.
	immediate atomic.Bool
	mu        sync.Mutex
	due       time.Time
	hasDue    bool
	// running guards against two Run loops, which would let fn overlap itself.
	running atomic.Bool

	// blocked, when set by tests, is called each time the loop is about to wait, with
	// the time it will next run fn unless a request arrives sooner. It makes the tests
	// deterministic without sleeping: they know exactly when the loop is idle.
	blocked func(wake time.Time)
}

// Option configures a Runner.
type Option func(*Runner)

// WithClock makes the Runner read time and set timers through c instead of the real
// clock, so that tests can step time with a k8s.io/utils/clock/testing FakeClock.
func WithClock(c clock.Clock) Option {
	return func(r *Runner) { r.clock = c }
}

// defaultRetryInterval is the first retry delay when neither WithRetryInterval nor the
// minimum interval gives a positive one: without a floor, a failing fn with no minimum
// interval would be retried in a hot loop.
const defaultRetryInterval = time.Second

// WithRetryInterval sets the delay before the first retry after fn fails; the default is
// the minimum interval, or one second when that is 0. Each further consecutive failure doubles the delay, up to the
// maximum interval, so a persistently failing sync (say, iptables-restore rejecting the
// input) does not spin and flood the log, yet still retries at least as often as the
// periodic resync would.
func WithRetryInterval(d time.Duration) Option {
	return func(r *Runner) { r.retryInterval = d }
}

// New returns a Runner named name (for logs) that calls fn.
//
// minInterval is the least time between the starts of two runs; 0 lets every request run
// at once. maxInterval is the most time between the starts of two runs when nothing
// fails and nothing asks: the periodic resync that repairs rules someone else changed.
// maxInterval <= 0 disables periodic runs; a positive maxInterval below minInterval is
// raised to minInterval, since runs can never be closer than that anyway.
func New(name string, fn func(ctx context.Context) error, minInterval, maxInterval time.Duration, opts ...Option) *Runner {
	r := &Runner{
		name:        name,
		fn:          fn,
		minInterval: max(minInterval, 0),
		maxInterval: maxInterval,
		clock:       clock.RealClock{},
		requests:    make(chan struct{}, 1),
	}
	if r.maxInterval > 0 && r.maxInterval < r.minInterval {
		r.maxInterval = r.minInterval
	}
	r.retryInterval = r.minInterval
	for _, opt := range opts {
		opt(r)
	}
	if r.retryInterval <= 0 {
		r.retryInterval = defaultRetryInterval
	}
	return r
}

// Request asks for fn to run. It never blocks. The run happens at once if fn has not
// started within the minimum interval, otherwise as soon as the interval has passed. Any
// number of requests made before a run starts are satisfied by that one run; a request
// made while fn is running causes one more run after it, because fn may already have
// read the state that the request is about.
func (r *Runner) Request() {
	r.immediate.Store(true)
	r.wake()
}

// RequestWithin asks for fn to run within d from now: like Request, but the run may wait
// up to d for more changes instead of starting at once. A request that is due sooner,
// from Request or from an earlier RequestWithin, is not delayed by it, and a later one
// never moves its deadline back; the minimum interval still applies on top. So it never
// adds a run, and never makes runs closer together: it only lets a change that is not
// useful on its own wait for the one that completes it (the controller uses it for a
// new Service whose EndpointSlice has not arrived yet).
func (r *Runner) RequestWithin(d time.Duration) {
	if d <= 0 {
		r.Request()
		return
	}
	due := r.clock.Now().Add(d)
	r.mu.Lock()
	if !r.hasDue || due.Before(r.due) {
		r.due, r.hasDue = due, true
	}
	r.mu.Unlock()
	r.wake()
}

// wake makes the loop look at the pending requests again.
func (r *Runner) wake() {
	select {
	case r.requests <- struct{}{}:
	default:
		// The loop has a wake-up pending; it reads the requests when it takes it.
	}
}

// Pending reports whether a run was requested and has not started yet, and the latest
// time the requests let it start (the zero time: as soon as the minimum interval
// allows; see RequestWithin).
func (r *Runner) Pending() (time.Time, bool) {
	if r.immediate.Load() {
		return time.Time{}, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.due, r.hasDue
}

// takeRequests marks every pending request as satisfied by the run about to start:
// the changes they are about were made before they were requested, so before fn starts.
func (r *Runner) takeRequests() {
	select {
	case <-r.requests:
	default:
	}
	r.immediate.Store(false)
	r.mu.Lock()
	r.hasDue = false
	r.mu.Unlock()
}

// ErrAlreadyRunning is returned by Run when another Run of the same Runner is active.
var ErrAlreadyRunning = errors.New("runner is already running")

// Run calls fn as requested until ctx is done, and returns nil then. It does not call fn
// on its own at start: the caller requests the first run once its caches are synced
// (kube-proxy likewise waits for Services, EndpointSlices and the Node), or the
// periodic run happens maxInterval after Run starts. An fn that is running when ctx ends
// is left to notice ctx itself; Run returns after it does.
//
// Run returns an error wrapping ErrAlreadyRunning, without calling fn, if the Runner is
// already running.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("runner %s: %w", r.name, ErrAlreadyRunning)
	}
	defer r.running.Store(false)
	logger := klog.FromContext(ctx).WithValues("runner", r.name)

	var (
		// lastStart is when fn last started; zero before the first run.
		lastStart time.Time
		// periodicBase is what the maximum interval counts from: the last start, or
		// Run's own start before the first run.
		periodicBase = r.clock.Now()
		// retryAt is when to retry after a failure; zero after a success.
		retryAt time.Time
		// failures counts consecutive failures, for the backoff.
		failures int
	)
	for {
		due, pending := r.Pending()
		wake, ok := r.nextRun(lastStart, periodicBase, pending, due, retryAt)
		if !ok || wake.After(r.clock.Now()) {
			var timerC <-chan time.Time
			var timer clock.Timer
			if ok {
				timer = r.clock.NewTimer(wake.Sub(r.clock.Now()))
				timerC = timer.C()
			}
			if r.blocked != nil {
				r.blocked(wake)
			}
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return nil
			case <-r.requests:
				if timer != nil {
					timer.Stop()
				}
				continue
			case <-timerC:
			}
		}
		if ctx.Err() != nil {
			return nil
		}

		// This run sees every change made before it starts, so it satisfies any
		// request already queued.
		r.takeRequests()
		lastStart = r.clock.Now()
		periodicBase = lastStart
		err := r.fn(ctx)
		if ctx.Err() != nil {
			// fn was cut short by the shutdown; its error says nothing about the rules.
			return nil
		}
		if err == nil {
			failures, retryAt = 0, time.Time{}
			continue
		}
		failures++
		backoff := r.backoff(failures)
		retryAt = r.clock.Now().Add(backoff)
		logger.Error(err, "Run failed; will retry", "failures", failures, "retryAfter", backoff)
	}
}

// nextRun returns when fn should next start, or false if only a request can start it.
// due is when the pending requests, if any, want the run at the latest.
func (r *Runner) nextRun(lastStart, periodicBase time.Time, pending bool, due, retryAt time.Time) (time.Time, bool) {
	var wake time.Time
	found := false
	earlier := func(t time.Time) {
		if !found || t.Before(wake) {
			wake, found = t, true
		}
	}
	if pending {
		// As soon as the minimum interval allows (the zero time when fn never ran: at
		// once), unless every pending request agreed to wait longer.
		earlier(later(lastStart.Add(r.minInterval), due))
	}
	if !retryAt.IsZero() {
		earlier(retryAt)
	}
	if r.maxInterval > 0 {
		earlier(periodicBase.Add(r.maxInterval))
	}
	if !found {
		return time.Time{}, false
	}
	// Whatever asked, runs never start closer together than the minimum interval.
	if !lastStart.IsZero() && wake.Before(lastStart.Add(r.minInterval)) {
		wake = lastStart.Add(r.minInterval)
	}
	return wake, true
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// backoff returns the delay before the retry after the given number of consecutive
// failures: the retry interval, doubled per further failure, capped at the maximum
// interval when there is one.
func (r *Runner) backoff(failures int) time.Duration {
	d := r.retryInterval
	for i := 1; i < failures; i++ {
		if r.maxInterval > 0 && d >= r.maxInterval {
			break
		}
		if d > time.Duration(1<<62) {
			break // doubling again would overflow
		}
		d *= 2
	}
	if r.maxInterval > 0 && d > r.maxInterval {
		d = r.maxInterval
	}
	return d
}
