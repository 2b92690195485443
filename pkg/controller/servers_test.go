package controller

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// TestProfilingOnlyWhenEnabled checks that /debug/pprof/ is served on the metrics
// address only with --profiling, as in kube-proxy.
// Mutation-checked: registering the pprof handlers unconditionally fails the
// "profiling off" case.
func TestProfilingOnlyWhenEnabled(t *testing.T) {
	for _, tc := range []struct {
		name      string
		profiling bool
		want      int
	}{
		{"profiling off", false, http.StatusNotFound},
		{"profiling on", true, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.EnableProfiling = tc.profiling
			c := newController(cfg, "node1", fake.NewClientset())
			rec := httptest.NewRecorder()
			c.metricsMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
			if rec.Code != tc.want {
				t.Errorf("GET /debug/pprof/: HTTP %d, want %d", rec.Code, tc.want)
			}
			rec = httptest.NewRecorder()
			c.metricsMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/proxyMode", nil))
			if rec.Code != http.StatusOK || rec.Body.String() != "iptables" {
				t.Errorf("GET /proxyMode: HTTP %d %q, want 200 iptables", rec.Code, rec.Body.String())
			}
		})
	}
}

// TestBindAddressHardFail checks that an address already in use is fatal only with
// --bind-address-hard-fail; without it the proxy starts and retries the bind.
// Mutation-checked: returning the error whatever BindAddressHardFail says fails the
// "retry" case.
func TestBindAddressHardFail(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name     string
		hardFail bool
		wantErr  bool
	}{
		{"retry", false, false},
		{"hard fail", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.HealthzBindAddress = busy.Addr().String()
			cfg.MetricsBindAddress = ""
			cfg.BindAddressHardFail = tc.hardFail
			c := newController(cfg, "node1", fake.NewClientset())
			servers, err := c.startServers(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("startServers: %v, want error %v", err, tc.wantErr)
			}
			if servers != nil {
				servers.shutdown()
			}
		})
	}
}

// TestBindRetryServesOnceFree checks that without --bind-address-hard-fail a health
// address that was busy at start is served as soon as it is free.
// Mutation-checked: closing the new listener instead of serving it in retry fails
// this test.
func TestBindRetryServesOnceFree(t *testing.T) {
	defer func(old time.Duration) { bindRetryInterval = old }(bindRetryInterval)
	bindRetryInterval = 20 * time.Millisecond
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := busy.Addr().String()
	cfg := Defaults()
	cfg.HealthzBindAddress = addr
	cfg.MetricsBindAddress = ""
	c := newController(cfg, "node1", fake.NewClientset())
	servers, err := c.startServers(context.Background())
	if err != nil {
		t.Fatalf("startServers: %v", err)
	}
	defer servers.shutdown()
	busy.Close()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/livez")
		if err == nil {
			resp.Body.Close()
			return // served: any status shows the health handler answers
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /livez on %s after the address was freed: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDebugOnlyOnMetricsAddress checks that the health address, which listens on every
// address by default (0.0.0.0:10256, for load-balancer probes), serves only /healthz
// and /livez: /debug/state, /debug/pprof/ and /metrics are on the metrics address,
// which is loopback by default (pkg/kubeproxyconfig TestMetricsOnLoopbackByDefault).
// Mutation-checked: registering /debug/state in healthMux fails "health
// /debug/state"; registering it only with --profiling fails the last check.
func TestDebugOnlyOnMetricsAddress(t *testing.T) {
	cfg := Defaults()
	cfg.EnableProfiling = true
	c := newController(cfg, "node1", fake.NewClientset())
	// The server muxes answer 404 for a path they do not serve; /healthz and /livez
	// answer 503 before the first sync, which still shows they are served.
	served := func(code int) bool { return code != http.StatusNotFound }
	for _, tc := range []struct {
		name       string
		mux        http.Handler
		path       string
		wantServed bool
	}{
		{"health /healthz", c.healthMux(), "/healthz", true},
		{"health /livez", c.healthMux(), "/livez", true},
		{"health /debug/state", c.healthMux(), "/debug/state", false},
		{"health /debug/pprof/", c.healthMux(), "/debug/pprof/", false},
		{"health /metrics", c.healthMux(), "/metrics", false},
		{"health /proxyMode", c.healthMux(), "/proxyMode", false},
		{"metrics /debug/state", c.metricsMux(), "/debug/state", true},
		{"metrics /metrics", c.metricsMux(), "/metrics", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if got := served(rec.Code); got != tc.wantServed {
				t.Errorf("GET %s: HTTP %d, served %t, want %t", tc.path, rec.Code, got, tc.wantServed)
			}
		})
	}
	cfg.EnableProfiling = false
	c = newController(cfg, "node1", fake.NewClientset())
	rec := httptest.NewRecorder()
	c.metricsMux().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/state", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /debug/state without --profiling: HTTP %d, want 200 (docs/debugging.md)", rec.Code)
	}
}
