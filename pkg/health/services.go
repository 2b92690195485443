package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// ServiceHealth serves one HTTP health check per healthCheckNodePort. A cloud load
// balancer probes it on every node and sends traffic only to nodes that answer 200,
// which is how externalTrafficPolicy Local avoids nodes without local endpoints. Safe
// for concurrent use.
type ServiceHealth struct {
	// bindIP is the address the checks listen on; empty means every address.
	bindIP  string
	proxier *ProxierHealth

	// listen opens a port; tests replace it.
	listen func(network, address string) (net.Listener, error)

	mu      sync.Mutex
	servers map[int32]*serviceServer
	// onServeError is told when a health-check server stops with an error.
	onServeError func(error)
}

// OnServeError sets the function told when a health-check server stops with an
// error other than its shutdown (the caller logs it: a load balancer would then see
// the node as unhealthy with no other trace).
func (s *ServiceHealth) OnServeError(f func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onServeError = f
}

type serviceServer struct {
	service    types.NamespacedName
	localReady int
	srv        *http.Server
}

// NewServiceHealth returns a ServiceHealth that listens on bindIP (empty for all
// addresses) and also reports the proxy's own health.
func NewServiceHealth(bindIP string, proxier *ProxierHealth) *ServiceHealth {
	return &ServiceHealth{bindIP: bindIP, proxier: proxier, servers: map[int32]*serviceServer{}, listen: net.Listen}
}

// ServiceStatus is the JSON body of a service health check, as kube-proxy prints it.
type ServiceStatus struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

// Sync makes the set of health-check servers match ports (service → node port) and
// sets each one's count of ready local endpoints. It returns the errors of ports that
// could not be opened; the others are served regardless.
func (s *ServiceHealth) Sync(ports map[types.NamespacedName]int32, localReady map[types.NamespacedName]int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wanted := map[int32]types.NamespacedName{}
	for svc, port := range ports {
		wanted[port] = svc
	}
	for port, srv := range s.servers {
		if svc, ok := wanted[port]; !ok || svc != srv.service {
			shutdown(srv.srv)
			delete(s.servers, port)
		}
	}
	var errs []error
	for port, svc := range wanted {
		srv := s.servers[port]
		if srv == nil {
			var err error
			if srv, err = s.start(port, svc); err != nil {
				errs = append(errs, err)
				continue
			}
			s.servers[port] = srv
		}
		srv.localReady = localReady[svc]
	}
	return errors.Join(errs...)
}

func (s *ServiceHealth) start(port int32, svc types.NamespacedName) (*serviceServer, error) {
	addr := net.JoinHostPort(s.bindIP, strconv.Itoa(int(port)))
	ln, err := s.listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health check for service %s on %s: %w", svc, addr, err)
	}
	srv := &serviceServer{service: svc}
	srv.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { s.serve(w, port) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		err := srv.srv.Serve(ln)
		if err == nil || errors.Is(err, http.ErrServerClosed) {
			return
		}
		s.mu.Lock()
		report := s.onServeError
		s.mu.Unlock()
		if report != nil {
			report(fmt.Errorf("health check for service %s on %s: %w", svc, addr, err))
		}
	}()
	return srv, nil
}

func (s *ServiceHealth) serve(w http.ResponseWriter, port int32) {
	s.mu.Lock()
	srv := s.servers[port]
	var st ServiceStatus
	if srv != nil {
		st.Service.Namespace, st.Service.Name = srv.service.Namespace, srv.service.Name
		st.LocalEndpoints = srv.localReady
	}
	s.mu.Unlock()
	st.ServiceProxyHealthy, _ = s.proxier.Healthy()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if st.LocalEndpoints > 0 && st.ServiceProxyHealthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}

// Close stops every health-check server.
func (s *ServiceHealth) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for port, srv := range s.servers {
		shutdown(srv.srv)
		delete(s.servers, port)
	}
}

func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
