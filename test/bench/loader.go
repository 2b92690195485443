package bench

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Namespace holds every object the loader creates.
const Namespace = "bench"

// PortName is the name of each benchmark Service's single TCP port.
const PortName = "http"

// TargetPort is the endpoints' port.
const TargetPort = 8080

// maxSliceEndpoints is the API's limit on endpoints per EndpointSlice.
const maxSliceEndpoints = 1000

// Scale is a benchmark size: Services × endpoints per Service.
type Scale struct {
	Services  int `json:"services"`
	Endpoints int `json:"endpoints"`
}

// String is "1000x10".
func (s Scale) String() string { return fmt.Sprintf("%dx%d", s.Services, s.Endpoints) }

// ParseScale reads "1000x10".
func ParseScale(text string) (Scale, error) {
	var s Scale
	if _, err := fmt.Sscanf(text, "%dx%d", &s.Services, &s.Endpoints); err != nil || s.Services < 1 || s.Endpoints < 1 {
		return Scale{}, fmt.Errorf("scale %q: want SERVICESxENDPOINTS, e.g. 1000x10", text)
	}
	return s, nil
}

// ServiceName is the name of benchmark Service i.
func ServiceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// SliceName is the name of the j-th EndpointSlice of Service i.
func SliceName(i, j int) string { return fmt.Sprintf("%s-%d", ServiceName(i), j) }

// EndpointIP is the address of endpoint j of Service i: inside the cluster CIDR
// 10.244.0.0/16, unique within a Service. No pod answers there; the benchmark only
// looks at rules.
func EndpointIP(i, j int) string {
	n := uint32(i*7919+j) % 65000
	return netip.AddrFrom4([4]byte{10, 244, byte(n >> 8), byte(n)}).String()
}

// ChangedIP is the address that the c-th endpoint change writes, outside the ranges
// EndpointIP uses, so that every change makes a new KUBE-SEP chain.
func ChangedIP(c int) string {
	return netip.AddrFrom4([4]byte{10, 245, byte(c >> 8), byte(c)}).String()
}

// Loader creates benchmark objects with parallel client-go calls.
type Loader struct {
	// Client talks to the apiserver; give it a high QPS and Burst.
	Client kubernetes.Interface
	// Workers is the number of concurrent requests.
	Workers int
	// Labels are put on every Service (e.g. the service-proxy-name label to hide them).
	Labels map[string]string
}

// Service returns benchmark Service i: ClusterIP, one TCP port 80 named "http".
func (l *Loader) Service(i int) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName(i), Namespace: Namespace, Labels: l.Labels},
		Spec: v1.ServiceSpec{
			Ports: []v1.ServicePort{{Name: PortName, Port: 80, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(TargetPort)}},
		},
	}
}

// Slices returns the EndpointSlices of Service i with the given addresses, at most
// 1000 to a slice, annotated with the trigger time now.
func Slices(i int, addresses []string, now time.Time) []*discoveryv1.EndpointSlice {
	var slices []*discoveryv1.EndpointSlice
	for j := 0; j*maxSliceEndpoints < len(addresses) || j == 0; j++ {
		chunk := addresses[j*maxSliceEndpoints : min(len(addresses), (j+1)*maxSliceEndpoints)]
		slices = append(slices, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name:      SliceName(i, j),
				Namespace: Namespace,
				Labels: map[string]string{
					discoveryv1.LabelServiceName: ServiceName(i),
					discoveryv1.LabelManagedBy:   "bench.switchyard.io",
				},
				Annotations: map[string]string{v1.EndpointsLastChangeTriggerTime: now.UTC().Format(time.RFC3339Nano)},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(PortName), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](TargetPort)}},
			Endpoints:   endpointList(chunk),
		})
	}
	return slices
}

func endpointList(addresses []string) []discoveryv1.Endpoint {
	list := make([]discoveryv1.Endpoint, 0, len(addresses))
	for _, address := range addresses {
		list = append(list, discoveryv1.Endpoint{
			Addresses:  []string{address},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		})
	}
	return list
}

// Addresses returns the initial endpoint addresses of Service i.
func Addresses(i, endpoints int) []string {
	addresses := make([]string, endpoints)
	for j := range addresses {
		addresses[j] = EndpointIP(i, j)
	}
	return addresses
}

// EnsureNamespace creates the benchmark namespace if missing.
func (l *Loader) EnsureNamespace(ctx context.Context) error {
	_, err := l.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", Namespace, err)
	}
	return nil
}

// CreateService creates Service i and its slices.
func (l *Loader) CreateService(ctx context.Context, i, endpoints int) error {
	if err := retryOverloaded(ctx, func() error {
		_, err := l.Client.CoreV1().Services(Namespace).Create(ctx, l.Service(i), metav1.CreateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("creating Service %s/%s: %w", Namespace, ServiceName(i), err)
	}
	for _, slice := range Slices(i, Addresses(i, endpoints), time.Now()) {
		if err := retryOverloaded(ctx, func() error {
			_, err := l.Client.DiscoveryV1().EndpointSlices(Namespace).Create(ctx, slice, metav1.CreateOptions{})
			return err
		}); err != nil {
			return fmt.Errorf("creating EndpointSlice %s/%s: %w", Namespace, slice.Name, err)
		}
	}
	return nil
}

// DeleteService deletes Service i and its slices.
func (l *Loader) DeleteService(ctx context.Context, i, endpoints int) error {
	for j := 0; j*maxSliceEndpoints < endpoints || j == 0; j++ {
		if err := l.Client.DiscoveryV1().EndpointSlices(Namespace).Delete(ctx, SliceName(i, j), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting EndpointSlice %s/%s: %w", Namespace, SliceName(i, j), err)
		}
	}
	if err := l.Client.CoreV1().Services(Namespace).Delete(ctx, ServiceName(i), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Service %s/%s: %w", Namespace, ServiceName(i), err)
	}
	return nil
}

// Load creates Services first..first+count-1 with their slices, Workers at a time,
// and returns the first error.
func (l *Loader) Load(ctx context.Context, first, count, endpoints int) error {
	return l.Parallel(ctx, first, count, func(ctx context.Context, i int) error {
		return l.CreateService(ctx, i, endpoints)
	})
}

// retryOverloaded retries do a few times while the API server reports it is
// overloaded (a request timeout, 429, 500: on a 2-core machine shared with other test
// clusters, loading 10k Services failed with "request did not complete within
// requested timeout"). A create that timed out may have happened, so a retry that
// finds the object already there counts as done.
func retryOverloaded(ctx context.Context, do func() error) error {
	var err error
	for attempt := range 6 {
		if err = do(); err == nil || (attempt > 0 && apierrors.IsAlreadyExists(err)) {
			return nil
		}
		if !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTooManyRequests(err) &&
			!apierrors.IsInternalError(err) && !apierrors.IsInvalid(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 2 * time.Second):
		}
	}
	return err
}

// Parallel calls do for i in [first, first+count) on Workers goroutines and returns
// the first error; the others stop soon after it.
func (l *Loader) Parallel(ctx context.Context, first, count int, do func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(1, l.Workers) {
		wg.Go(func() {
			for i := range work {
				if err := do(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := first; i < first+count; i++ {
		select {
		case work <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

// ReplaceEndpoint writes Service i's first slice with endpoint 0 replaced by address,
// and a fresh trigger time. It returns when the write has returned.
func (l *Loader) ReplaceEndpoint(ctx context.Context, i, endpoints int, address string) error {
	addresses := Addresses(i, min(endpoints, maxSliceEndpoints))
	addresses[0] = address
	slice := Slices(i, addresses, time.Now())[0]
	existing, err := l.Client.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, slice.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading EndpointSlice %s/%s: %w", Namespace, slice.Name, err)
	}
	slice.ResourceVersion = existing.ResourceVersion
	slice.Annotations[v1.EndpointsLastChangeTriggerTime] = time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := l.Client.DiscoveryV1().EndpointSlices(Namespace).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating EndpointSlice %s/%s: %w", Namespace, slice.Name, err)
	}
	return nil
}

// SetServiceLabels replaces the labels of Service i (merge patch).
func (l *Loader) SetServiceLabels(ctx context.Context, i int, patch []byte) error {
	_, err := l.Client.CoreV1().Services(Namespace).Patch(ctx, ServiceName(i), "application/merge-patch+json", patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("patching Service %s/%s: %w", Namespace, ServiceName(i), err)
	}
	return nil
}
