package health

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

func probe(t *testing.T, port int32) (int, ServiceStatus) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatalf("probing port %d: %v", port, err)
	}
	defer resp.Body.Close()
	var st ServiceStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, st
}

func TestServiceHealth(t *testing.T) {
	proxier := NewProxierHealth(time.Minute, nil)
	proxier.Updated(time.Now())
	sh := NewServiceHealth("127.0.0.1", proxier)
	t.Cleanup(sh.Close)

	svc := types.NamespacedName{Namespace: "shop", Name: "storefront"}
	port := freePort(t)
	if err := sh.Sync(map[types.NamespacedName]int32{svc: port}, map[types.NamespacedName]int{svc: 2}); err != nil {
		t.Fatal(err)
	}
	code, st := probe(t, port)
	if code != http.StatusOK || st.LocalEndpoints != 2 || st.Service.Name != "storefront" || !st.ServiceProxyHealthy {
		t.Errorf("two local endpoints: got %d %+v, want 200 with localEndpoints 2", code, st)
	}

	// Only terminating local endpoints left: the load balancer must drain this node
	// (kubernetes#115825).
	if err := sh.Sync(map[types.NamespacedName]int32{svc: port}, map[types.NamespacedName]int{}); err != nil {
		t.Fatal(err)
	}
	if code, st := probe(t, port); code != http.StatusServiceUnavailable || st.LocalEndpoints != 0 {
		t.Errorf("no ready local endpoint: got %d %+v, want 503", code, st)
	}

	// The service goes away: its port closes.
	if err := sh.Sync(nil, nil); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		conn.Close()
		t.Errorf("port %d still open after its service was removed", port)
	}
}
