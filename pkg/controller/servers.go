package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// bindRetryInterval is how often a server that could not bind tries again, as
// kube-proxy retries without --bind-address-hard-fail. A variable so that a test can
// shorten it.
var bindRetryInterval = 5 * time.Second

// httpServers are the daemon's health and metrics endpoints.
type httpServers struct {
	mu      sync.Mutex
	servers []*http.Server
	// closed is set by shutdown; a retry that binds afterwards closes its listener.
	closed bool
	// stop ends the bind retries and retries waits for them to return, so that no
	// retry outlives shutdown.
	stop    context.CancelFunc
	retries sync.WaitGroup
	// retryInterval is bindRetryInterval as it was at start.
	retryInterval time.Duration
}

// startServers listens on the health and metrics addresses. With
// --bind-address-hard-fail an address that cannot be bound is an error at start;
// without it, as in kube-proxy, the failure is logged and the bind retried every few
// seconds while the proxy runs.
func (c *Controller) startServers(ctx context.Context) (*httpServers, error) {
	logger := klog.FromContext(ctx)
	retryCtx, stop := context.WithCancel(ctx)
	s := &httpServers{stop: stop, retryInterval: bindRetryInterval}
	serve := func(addr string, handler http.Handler) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if c.cfg.BindAddressHardFail {
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			logger.Error(err, "Cannot listen; retrying (set --bind-address-hard-fail to make this fatal)", "address", addr)
			s.retries.Add(1)
			go func() {
				defer s.retries.Done()
				s.retry(retryCtx, logger, addr, handler)
			}()
			return nil
		}
		s.serve(logger, ln, handler)
		return nil
	}
	if err := serve(c.cfg.HealthzBindAddress, c.healthMux()); err != nil {
		s.shutdown()
		return nil, err
	}
	if err := serve(c.cfg.MetricsBindAddress, c.metricsMux()); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

// healthMux serves /healthz and /livez.
func (c *Controller) healthMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/healthz", c.health.HealthzHandler())
	mux.Handle("/livez", c.health.LivezHandler())
	return mux
}

// metricsMux serves /metrics, /healthz, /proxyMode, /debug/state (always: see
// stateHandler for why it does not need --profiling) and, only with --profiling, as
// in kube-proxy, /debug/pprof/.
func (c *Controller) metricsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(c.metrics.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/healthz", c.health.HealthzHandler())
	mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, c.cfg.Mode) })
	mux.Handle("/debug/state", c.stateHandler())
	if c.cfg.EnableProfiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serve starts an HTTP server on ln.
func (s *httpServers) serve(logger klog.Logger, ln net.Listener, handler http.Handler) {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "HTTP server stopped", "address", ln.Addr().String())
		}
	}()
	logger.Info("Serving", "address", ln.Addr().String())
}

// retry binds addr every retryInterval until it succeeds or ctx ends.
func (s *httpServers) retry(ctx context.Context, logger klog.Logger, addr string, handler http.Handler) {
	_ = wait.PollUntilContextCancel(ctx, s.retryInterval, false, func(context.Context) (bool, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			logger.V(2).Info("Still cannot listen", "address", addr, "err", err)
			return false, nil
		}
		s.serve(logger, ln, handler)
		return true, nil
	})
}

// shutdown ends the bind retries, waits for them, and shuts the servers down.
func (s *httpServers) shutdown() {
	s.stop()
	s.retries.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	for _, srv := range servers {
		_ = srv.Shutdown(ctx)
	}
}
