package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// httpServers are the daemon's health and metrics endpoints.
type httpServers []*http.Server

// startServers listens on the health and metrics addresses. A port that cannot be
// opened is an error at start: a proxy without health checks would be killed by its
// liveness probe later anyway, with a less clear message.
func (c *Controller) startServers(ctx context.Context) (httpServers, error) {
	logger := klog.FromContext(ctx)
	var servers httpServers
	serve := func(addr string, handler http.Handler) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error(err, "HTTP server stopped", "address", addr)
			}
		}()
		logger.Info("Serving", "address", ln.Addr().String())
		return nil
	}

	healthMux := http.NewServeMux()
	healthMux.Handle("/healthz", c.health.HealthzHandler())
	healthMux.Handle("/livez", c.health.LivezHandler())
	if err := serve(c.cfg.HealthzBindAddress, healthMux); err != nil {
		return nil, err
	}

	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", promhttp.HandlerFor(c.metrics.Registry, promhttp.HandlerOpts{}))
	metricsMux.Handle("/healthz", c.health.HealthzHandler())
	metricsMux.HandleFunc("/proxyMode", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, c.cfg.Mode) })
	// Profiles explain slow syncs; the metrics address is loopback by default.
	metricsMux.HandleFunc("/debug/pprof/", pprof.Index)
	metricsMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	if err := serve(c.cfg.MetricsBindAddress, metricsMux); err != nil {
		servers.shutdown()
		return nil, err
	}
	return servers, nil
}

func (s httpServers) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range s {
		_ = srv.Shutdown(ctx)
	}
}
