package health

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// failingListener accepts nothing: its first Accept fails, as a listener whose socket
// was closed underneath would.
type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) { return nil, errors.New("accept: socket gone") }
func (failingListener) Close() error              { return nil }
func (failingListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 32000} }

// TestServiceHealthReportsServeErrors checks that a health-check server that stops
// with an error is reported, naming the service and address, instead of being
// discarded (before the fix: `_ = srv.Serve(ln)`).
func TestServiceHealthReportsServeErrors(t *testing.T) {
	s := NewServiceHealth("127.0.0.1", NewProxierHealth(time.Minute, nil))
	defer s.Close()
	s.listen = func(string, string) (net.Listener, error) { return failingListener{}, nil }
	reported := make(chan error, 1)
	s.OnServeError(func(err error) { reported <- err })
	svc := types.NamespacedName{Namespace: "ns", Name: "lb"}
	if err := s.Sync(map[types.NamespacedName]int32{svc: 32000}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reported:
		for _, want := range []string{"ns/lb", "127.0.0.1:32000", "socket gone"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("reported error %q does not mention %q", err, want)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the serve error was not reported")
	}
}
