package testbed

// WatchProxy: a TLS reverse proxy in front of the testbed's kube-apiserver that can end
// a live watch stream with 410 Gone while the apiserver stays up, for issue 11's
// "a watch ends with 410 Gone and relists" (test/e2e TestFaultsWatchExpired, and
// test/ipvs TestDaemonInVM, whose guest reaches it through QEMU's user network).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	restclientwatch "k8s.io/client-go/rest/watch"
	"k8s.io/client-go/tools/clientcmd"
)

// WatchProxy listens on every address of the control plane namespace (so every node
// reaches it, as it reaches the apiserver, and so does a QEMU guest started in that
// namespace, at 10.0.2.2, its user network's alias of the loopback) and passes every request through to kube-apiserver. Watches
// of one resource are relayed frame by frame, in whatever encoding the client asked
// for (protobuf for Switchyard, as kube-proxy), so the test can do to them what an
// apiserver whose watch cache has moved past the client does: cut stops relaying the
// upstream events (they are read and withheld, so the client misses them), and
// expire writes the apiserver's own error event, a Status with code 410 and reason
// Expired ("too old resource version"), and ends the stream. A client must then
// relist; the proxy records every list of the resource (a LIST, or a WATCH with
// sendInitialEvents=true, the streaming list client-go uses since 1.35), so the test
// sees that it did.
type WatchProxy struct {
	// resource is the resource whose watches are relayed frame by frame
	// ("endpointslices").
	resource string
	// Port is the proxy's TCP port.
	Port int

	server    *httptest.Server
	upstream  *url.URL
	transport *http.Transport
	reverse   *httputil.ReverseProxy

	mu       sync.Mutex
	streams  map[*relayedWatch]struct{}
	lists    []ListRequest
	withheld map[watch.EventType]int
}

// ListRequest is one list of the resource that reached the proxy.
type ListRequest struct {
	At time.Time
	// Kind is "LIST" or "WATCH-LIST" (sendInitialEvents=true).
	Kind      string
	UserAgent string
}

// relayedWatch is one watch of the resource being relayed.
type relayedWatch struct {
	resourceVersion string
	cut, expire     chan struct{}
	once            sync.Once
	expireOnce      sync.Once
}

// StartWatchProxy starts the proxy for resource in front of c's apiserver; t.Cleanup
// stops it.
func StartWatchProxy(t *testing.T, c *Cluster, resource string) *WatchProxy {
	t.Helper()
	config, err := c.RESTConfig(c.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := url.Parse(c.APIServerURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &WatchProxy{
		resource: resource,
		upstream: upstream,
		// The apiserver's serving certificate is self-signed (testbed kubeconfigs skip
		// verification too); the dialer opens its sockets in the control plane
		// namespace, where the apiserver is reachable from the test process.
		transport: &http.Transport{
			DialContext:     config.Dial,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a throwaway test cluster
		},
		streams:  map[*relayedWatch]struct{}{},
		withheld: map[watch.EventType]int{},
	}
	p.reverse = httputil.NewSingleHostReverseProxy(upstream)
	p.reverse.Transport = p.transport
	p.reverse.FlushInterval = -1 // the other watches stream through unchanged
	listener, err := SocketIn(c.Netns, func() (net.Listener, error) {
		return net.Listen("tcp", ":0")
	})
	if err != nil {
		t.Fatal(err)
	}
	p.server = httptest.NewUnstartedServer(p)
	p.server.Listener = listener
	p.server.StartTLS()
	t.Cleanup(func() {
		// Live watches would hold Close forever: cut the connections first.
		p.server.CloseClientConnections()
		p.server.Close()
		p.transport.CloseIdleConnections()
	})
	p.Port = listener.Addr().(*net.TCPAddr).Port
	return p
}

// Kubeconfig writes a copy of kubeconfig (one of c's, with its identity) whose server
// is the proxy at host (APIServerIP for a node, 10.0.2.2 for a QEMU guest), and
// returns its path.
func (p *WatchProxy) Kubeconfig(t *testing.T, kubeconfig, host string) string {
	t.Helper()
	config, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cluster := range config.Clusters {
		cluster.Server = "https://" + net.JoinHostPort(host, strconv.Itoa(p.Port))
		// The proxy's certificate is httptest's.
		cluster.InsecureSkipTLSVerify = true
		cluster.CertificateAuthority, cluster.CertificateAuthorityData = "", nil
	}
	path := filepath.Join(t.TempDir(), "watch-proxy.kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ServeHTTP relays one request.
func (p *WatchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	ours := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+p.resource)
	isWatch := query.Get("watch") == "true" || query.Get("watch") == "1"
	if ours && (!isWatch || query.Get("sendInitialEvents") == "true") {
		kind := "LIST"
		if isWatch {
			kind = "WATCH-LIST"
		}
		p.mu.Lock()
		p.lists = append(p.lists, ListRequest{At: time.Now(), Kind: kind, UserAgent: r.UserAgent()})
		p.mu.Unlock()
	}
	if ours && isWatch {
		p.relayWatch(w, r)
		return
	}
	p.reverse.ServeHTTP(w, r)
}

// relayWatch relays one watch of the resource frame by frame until the client or the
// apiserver ends it, or the test expires it.
func (p *WatchProxy) relayWatch(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.upstream.Scheme, p.upstream.Host
	out.Host = p.upstream.Host
	// The apiserver gzips a watch for a client that accepts it; without the client's
	// header the transport asks for gzip itself and hands over the frames decompressed.
	out.Header.Del("Accept-Encoding")
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for key, values := range resp.Header {
		w.Header()[key] = values
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mediaType)
	if resp.StatusCode != http.StatusOK || !ok || info.StreamSerializer == nil {
		_, _ = io.Copy(w, resp.Body)
		return
	}

	stream := &relayedWatch{resourceVersion: r.URL.Query().Get("resourceVersion"), cut: make(chan struct{}), expire: make(chan struct{})}
	p.mu.Lock()
	p.streams[stream] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.streams, stream)
		p.mu.Unlock()
	}()

	// One goroutine reads the upstream frames; this one writes them, or withholds
	// them once cut, or ends the stream with 410 once expired.
	frames := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		readErr <- readFrames(r.Context(), info.StreamSerializer.Framer.NewFrameReader(resp.Body), frames)
	}()
	writer := info.StreamSerializer.Framer.NewFrameWriter(w)
	cutCh, cut := stream.cut, false
	for {
		select {
		case <-r.Context().Done():
			return
		case <-readErr:
			return
		case <-cutCh:
			cut, cutCh = true, nil // closed: stop selecting on it
		case frame := <-frames:
			if cut {
				p.withhold(info, frame)
				continue
			}
			if _, err := writer.Write(frame); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case <-stream.expire:
			// What the apiserver's watch cache sends a watcher it has moved past
			// (k8s.io/apiserver storage/cacher: "too old resource version").
			status := apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %s (events withheld by the testbed's watch proxy)", stream.resourceVersion)).ErrStatus
			encoder := restclientwatch.NewEncoder(streaming.NewEncoder(writer, info.StreamSerializer.Serializer),
				scheme.Codecs.EncoderForVersion(info.Serializer, schema.GroupVersion{Version: "v1"}))
			if err := encoder.Encode(&watch.Event{Type: watch.Error, Object: &status}); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			return
		}
	}
}

// readFrames sends each whole frame of reader on frames until it ends or ctx does.
func readFrames(ctx context.Context, reader io.ReadCloser, frames chan<- []byte) error {
	buf := make([]byte, 64<<10)
	var frame []byte
	for {
		n, err := reader.Read(buf)
		frame = append(frame, buf[:n]...)
		if errors.Is(err, io.ErrShortBuffer) {
			continue // the rest of this frame follows
		}
		if err != nil {
			return err
		}
		select {
		case frames <- frame:
		case <-ctx.Done():
			return ctx.Err()
		}
		frame = nil
	}
}

// withhold records an event the client will never see.
func (p *WatchProxy) withhold(info runtime.SerializerInfo, frame []byte) {
	var event metav1.WatchEvent
	eventType := watch.EventType("undecodable")
	if _, _, err := info.StreamSerializer.Serializer.Decode(frame, nil, &event); err == nil {
		eventType = watch.EventType(event.Type)
	}
	p.mu.Lock()
	p.withheld[eventType]++
	p.mu.Unlock()
}

// Watches returns how many watches of the resource are being relayed.
func (p *WatchProxy) Watches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

// Cut stops relaying every current watch of the resource: its events are withheld.
func (p *WatchProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for stream := range p.streams {
		stream.once.Do(func() { close(stream.cut) })
	}
}

// Expire ends every current watch of the resource with 410 Gone.
func (p *WatchProxy) Expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for stream := range p.streams {
		stream.expireOnce.Do(func() { close(stream.expire) })
	}
}

// Withheld returns the count of withheld events of one type.
func (p *WatchProxy) Withheld(eventType watch.EventType) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.withheld[eventType]
}

// ListsSince returns the lists of the resource that arrived after since.
func (p *WatchProxy) ListsSince(since time.Time) []ListRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ListRequest
	for _, l := range p.lists {
		if l.At.After(since) {
			out = append(out, l)
		}
	}
	return out
}
