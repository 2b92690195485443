package endpoints

// IP plan: see helpers_test.go. Services shop/web (10.96.0.10) and shop/api
// (10.96.0.11); their endpoints 10.244.<node>.x on port 8080 ("http") and 9090 ("metrics").

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

var (
	webHTTP = spn("shop", "web", "http", v1.ProtocolTCP)
	webMet  = spn("shop", "web", "metrics", v1.ProtocolTCP)
	apiHTTP = spn("shop", "api", "http", v1.ProtocolTCP)
)

// twoPorts gives a Service the ports "http" 80 and "metrics" 9090.
func twoPorts(s *v1.Service) {
	s.Spec.Ports = []v1.ServicePort{{Name: "http", Port: 80}, {Name: "metrics", Port: 9090}}
}

// slicePorts gives a slice the ports "http" 8080 and "metrics" 9090.
func slicePorts(s *discovery.EndpointSlice) {
	s.Ports = []discovery.EndpointPort{
		{Name: ptr("http"), Port: ptr[int32](8080)},
		{Name: ptr("metrics"), Port: ptr[int32](9090)},
	}
}

func withTrigger(ts time.Time) func(*discovery.EndpointSlice) {
	return func(s *discovery.EndpointSlice) {
		s.Annotations = map[string]string{TriggerTimeAnnotation: ts.Format(time.RFC3339Nano)}
	}
}

func changed(names ...ServicePortName) map[ServicePortName]struct{} {
	out := map[ServicePortName]struct{}{}
	for _, n := range names {
		out[n] = struct{}{}
	}
	return out
}

func mustUpdateService(t *testing.T, tr *Tracker, svc *v1.Service) {
	t.Helper()
	if err := tr.OnServiceUpdate(svc); err != nil {
		t.Fatalf("OnServiceUpdate: %v", err)
	}
}

func mustUpdateSlice(t *testing.T, tr *Tracker, slice *discovery.EndpointSlice) {
	t.Helper()
	if err := tr.OnEndpointSliceUpdate(slice); err != nil {
		t.Fatalf("OnEndpointSliceUpdate: %v", err)
	}
}

func TestTrackerSnapshot(t *testing.T) {
	tr := NewTracker(thisNode)
	if tr.Pending() {
		t.Fatalf("a new tracker is pending")
	}
	mustUpdateService(t, tr, makeService("shop", "web", twoPorts))
	mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}, slicePorts))
	if !tr.Pending() {
		t.Fatalf("tracker not pending after events")
	}
	snap := tr.Snapshot()
	if tr.Pending() {
		t.Errorf("tracker still pending after a snapshot")
	}
	if snap.Generation != 1 {
		t.Errorf("Generation = %d, want 1", snap.Generation)
	}
	if diff := cmp.Diff([]ServicePortName{webHTTP, webMet}, snap.SortedServices(), cmpOpts...); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ServicePortName{webHTTP, webMet}, snap.SortedChanged(), cmpOpts...); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
	want := map[ServicePortName][]*Endpoint{
		webHTTP: {{IP: addrs("10.244.1.5")[0], Port: 8080, NodeName: "node-a", Ready: true, Serving: true}},
		webMet:  {{IP: addrs("10.244.1.5")[0], Port: 9090, NodeName: "node-a", Ready: true, Serving: true}},
	}
	if diff := cmp.Diff(want, snap.Endpoints, cmpOpts...); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	if got := snap.EndpointCount(); got != 2 {
		t.Errorf("EndpointCount = %d, want 2", got)
	}

	// With nothing new, the next snapshot has the same content and no changes.
	next := tr.Snapshot()
	if next.Generation != 2 || len(next.Changed) != 0 {
		t.Errorf("idle snapshot: generation %d, changed %v", next.Generation, next.SortedChanged())
	}
	if diff := cmp.Diff(snap.Endpoints, next.Endpoints, cmpOpts...); diff != "" {
		t.Errorf("idle snapshot endpoints differ (-before +after):\n%s", diff)
	}
}

func TestTrackerChanged(t *testing.T) {
	base := func(t *testing.T) *Tracker {
		tr := NewTracker(thisNode)
		mustUpdateService(t, tr, makeService("shop", "web", twoPorts))
		mustUpdateService(t, tr, makeService("shop", "api", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"} }))
		mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}, slicePorts))
		mustUpdateSlice(t, tr, makeSlice("shop", "api", "api-1", []discovery.Endpoint{makeEndpoint("10.244.2.5", "node-b")}))
		tr.Snapshot()
		return tr
	}
	tests := []struct {
		name   string
		events func(t *testing.T, tr *Tracker)
		want   map[ServicePortName]struct{}
	}{
		{
			name: "one port's endpoints change, the other port's do not",
			events: func(t *testing.T, tr *Tracker) {
				mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}, func(s *discovery.EndpointSlice) {
					slicePorts(s)
					s.Ports[0].Port = ptr[int32](8081)
				}))
			},
			want: changed(webHTTP),
		},
		{
			name: "endpoint condition change",
			events: func(t *testing.T, tr *Tracker) {
				mustUpdateSlice(t, tr, makeSlice("shop", "api", "api-1", []discovery.Endpoint{makeEndpoint("10.244.2.5", "node-b", terminating(true))}))
			},
			want: changed(apiHTTP),
		},
		{
			name: "update to an identical object",
			events: func(t *testing.T, tr *Tracker) {
				mustUpdateService(t, tr, makeService("shop", "web", twoPorts))
				mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}, slicePorts))
			},
			want: changed(),
		},
		{
			name: "add then delete before a snapshot",
			events: func(t *testing.T, tr *Tracker) {
				extra := makeService("shop", "extra", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.12", []string{"10.96.0.12"} })
				mustUpdateService(t, tr, extra)
				slice := makeSlice("shop", "api", "api-2", []discovery.Endpoint{makeEndpoint("10.244.3.5", "node-c")})
				mustUpdateSlice(t, tr, slice)
				tr.OnServiceDelete(extra)
				tr.OnEndpointSliceDelete(slice)
			},
			want: changed(),
		},
		{
			name: "change then change back before a snapshot",
			events: func(t *testing.T, tr *Tracker) {
				mustUpdateService(t, tr, makeService("shop", "web", twoPorts, func(s *v1.Service) { s.Spec.Ports[0].Port = 81 }))
				mustUpdateService(t, tr, makeService("shop", "web", twoPorts))
			},
			want: changed(),
		},
		{
			name: "deleting a service marks all its ports",
			events: func(t *testing.T, tr *Tracker) {
				tr.OnServiceDelete(makeService("shop", "web"))
			},
			want: changed(webHTTP, webMet),
		},
		{
			name: "a service that becomes headless loses its ports",
			events: func(t *testing.T, tr *Tracker) {
				mustUpdateService(t, tr, makeService("shop", "web", twoPorts, func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ClusterIPNone, nil }))
			},
			want: changed(webHTTP, webMet),
		},
		{
			name: "removing one port of a service",
			events: func(t *testing.T, tr *Tracker) {
				mustUpdateService(t, tr, makeService("shop", "web"))
			},
			want: changed(webMet),
		},
		{
			name: "deleting a slice",
			events: func(t *testing.T, tr *Tracker) {
				tr.OnEndpointSliceDelete(makeSlice("shop", "api", "api-1", nil))
			},
			want: changed(apiHTTP),
		},
		{
			name: "service change that affects every port",
			events: func(t *testing.T, tr *Tracker) {
				mustUpdateService(t, tr, makeService("shop", "web", twoPorts, func(s *v1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.5"} }))
			},
			want: changed(webHTTP, webMet),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := base(t)
			tc.events(t, tr)
			snap := tr.Snapshot()
			if diff := cmp.Diff(tc.want, snap.Changed, cmpOpts...); diff != "" {
				t.Errorf("Changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTrackerDeleteAndRestore(t *testing.T) {
	tr := NewTracker(thisNode)
	svc := makeService("shop", "web")
	mustUpdateService(t, tr, svc)
	mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}))
	tr.Snapshot()

	tr.OnServiceDelete(svc)
	snap := tr.Snapshot()
	if len(snap.Services) != 0 || len(snap.Endpoints) != 0 {
		t.Fatalf("after delete: services %v, endpoints %v", snap.SortedServices(), snap.Endpoints)
	}
	// The slices are kept: when the Service comes back its endpoints do too.
	mustUpdateService(t, tr, svc)
	snap = tr.Snapshot()
	if got := ips(snap.Endpoints[webHTTP]); !slices.Equal(got, []string{"10.244.1.5"}) {
		t.Errorf("after re-adding: endpoints %v", got)
	}
	if diff := cmp.Diff(changed(webHTTP), snap.Changed, cmpOpts...); diff != "" {
		t.Errorf("Changed (-want +got):\n%s", diff)
	}
}

func TestSnapshotsAreImmutable(t *testing.T) {
	tr := NewTracker(thisNode)
	mustUpdateService(t, tr, makeService("shop", "web"))
	mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}))
	first := tr.Snapshot()
	before := fmt.Sprint(first.SortedServices(), ips(first.Endpoints[webHTTP]), first.SortedChanged())

	mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.6", "node-a")}))
	mustUpdateService(t, tr, makeService("shop", "api"))
	tr.OnServiceDelete(makeService("shop", "web"))
	tr.Snapshot()

	if after := fmt.Sprint(first.SortedServices(), ips(first.Endpoints[webHTTP]), first.SortedChanged()); after != before {
		t.Errorf("an old snapshot changed:\n  before %s\n  after  %s", before, after)
	}
}

func TestTrackerTriggerTimes(t *testing.T) {
	t1 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(5 * time.Second)
	tr := NewTracker(thisNode)
	mustUpdateService(t, tr, makeService("shop", "web"))
	mustUpdateService(t, tr, makeService("shop", "api"))
	tr.Snapshot()

	// The later update carries the earlier trigger time: the earliest wins.
	mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")}, withTrigger(t2)))
	mustUpdateSlice(t, tr, makeSlice("shop", "web", "web-2", []discovery.Endpoint{makeEndpoint("10.244.1.6", "node-a")}, withTrigger(t1)))
	// A slice with no endpoints changes nothing, so its trigger time is dropped.
	mustUpdateSlice(t, tr, makeSlice("shop", "api", "api-1", nil, withTrigger(t1)))
	snap := tr.Snapshot()
	want := map[types.NamespacedName]time.Time{nn("shop", "web"): t1}
	if diff := cmp.Diff(want, snap.TriggerTimes); diff != "" {
		t.Errorf("TriggerTimes (-want +got):\n%s", diff)
	}
	if next := tr.Snapshot(); len(next.TriggerTimes) != 0 {
		t.Errorf("trigger times carried into the next snapshot: %v", next.TriggerTimes)
	}

	// A bad annotation is reported, and the slice still applied.
	bad := makeSlice("shop", "web", "web-3", []discovery.Endpoint{makeEndpoint("10.244.1.7", "node-a")}, func(s *discovery.EndpointSlice) {
		s.Annotations = map[string]string{TriggerTimeAnnotation: "yesterday"}
	})
	if err := tr.OnEndpointSliceUpdate(bad); err == nil {
		t.Errorf("a bad trigger time annotation was not reported")
	}
	if got := ips(tr.Snapshot().Endpoints[webHTTP]); !slices.Contains(got, "10.244.1.7") {
		t.Errorf("slice with a bad annotation not applied: %v", got)
	}
}

// snapshotContent is the part of a snapshot that must not depend on event history.
type snapshotContent struct {
	Services  map[ServicePortName]*ServicePort
	Endpoints map[ServicePortName][]*Endpoint
}

func contentOf(s *Snapshot) snapshotContent {
	return snapshotContent{Services: s.Services, Endpoints: s.Endpoints}
}

// freshSnapshot feeds objects to a new tracker, in the given order, and snapshots it.
func freshSnapshot(services []*v1.Service, sliceObjs []*discovery.EndpointSlice) *Snapshot {
	tr := NewTracker(thisNode)
	for _, svc := range services {
		_ = tr.OnServiceUpdate(svc)
	}
	for _, slice := range sliceObjs {
		_ = tr.OnEndpointSliceUpdate(slice)
	}
	return tr.Snapshot()
}

// TestTrackerConcurrent sends events from several goroutines while another takes
// snapshots; run it with -race. Each goroutine owns its own objects, so the final state
// is known, and the final snapshot must equal a fresh tracker's.
func TestTrackerConcurrent(t *testing.T) {
	const writers, rounds = 4, 200
	tr := NewTracker(thisNode)
	finalServices := make([][]*v1.Service, writers)
	finalSlices := make([][]*discovery.EndpointSlice, writers)

	stop := make(chan struct{})
	snapshotterDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				snapshotterDone <- n
				return
			default:
				snap := tr.Snapshot()
				// Reading the snapshot while writers run is part of the test.
				_ = snap.EndpointCount()
				n++
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			ns := fmt.Sprintf("ns%d", w)
			var services []*v1.Service
			var sliceObjs []*discovery.EndpointSlice
			for range rounds {
				name := fmt.Sprintf("svc%d", rng.IntN(3))
				svc := makeService(ns, name, func(s *v1.Service) { s.Spec.Ports[0].Port = int32(80 + rng.IntN(2)) })
				slice := makeSlice(ns, name, name+"-1", []discovery.Endpoint{makeEndpoint(fmt.Sprintf("10.244.%d.%d", w, rng.IntN(3)+1), "node-a")})
				switch rng.IntN(4) {
				case 0:
					_ = tr.OnServiceUpdate(svc)
					services = upsertService(services, svc)
				case 1:
					tr.OnServiceDelete(svc)
					services = removeService(services, svc)
				case 2:
					_ = tr.OnEndpointSliceUpdate(slice)
					sliceObjs = upsertSlice(sliceObjs, slice)
				case 3:
					tr.OnEndpointSliceDelete(slice)
					sliceObjs = removeSlice(sliceObjs, slice)
				}
			}
			finalServices[w], finalSlices[w] = services, sliceObjs
		})
	}
	wg.Wait()
	close(stop)
	if n := <-snapshotterDone; n == 0 {
		t.Logf("the snapshotter took no snapshot while writers ran")
	}

	got := tr.Snapshot()
	want := freshSnapshot(slices.Concat(finalServices...), slices.Concat(finalSlices...))
	if diff := cmp.Diff(contentOf(want), contentOf(got), cmpOpts...); diff != "" {
		t.Errorf("final snapshot differs from a fresh tracker's (-fresh +got):\n%s", diff)
	}
}

func upsertService(list []*v1.Service, svc *v1.Service) []*v1.Service {
	list = removeService(list, svc)
	return append(list, svc)
}

func removeService(list []*v1.Service, svc *v1.Service) []*v1.Service {
	return slices.DeleteFunc(list, func(o *v1.Service) bool { return o.Namespace == svc.Namespace && o.Name == svc.Name })
}

func upsertSlice(list []*discovery.EndpointSlice, slice *discovery.EndpointSlice) []*discovery.EndpointSlice {
	list = removeSlice(list, slice)
	return append(list, slice)
}

func removeSlice(list []*discovery.EndpointSlice, slice *discovery.EndpointSlice) []*discovery.EndpointSlice {
	return slices.DeleteFunc(list, func(o *discovery.EndpointSlice) bool {
		return o.Namespace == slice.Namespace && o.Name == slice.Name
	})
}

// TestTrackerProperty checks, for random event sequences, that (1) the snapshot after
// each batch equals a fresh tracker's fed only the objects that exist at that point, in a
// random order, and (2) Changed is exactly the set of ports whose ServicePort or
// endpoints differ between consecutive snapshots.
func TestTrackerProperty(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 42))
		tr := NewTracker(thisNode)
		var services []*v1.Service
		var sliceObjs []*discovery.EndpointSlice
		prev := tr.Snapshot()
		var history []string
		for batch := range 12 {
			for range 1 + rng.IntN(5) {
				history = append(history, randomEvent(rng, tr, &services, &sliceObjs))
			}
			snap := tr.Snapshot()
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d batch %d: "+format+"\nevents:\n  %s", append([]any{seed, batch}, append(args, strings.Join(history, "\n  "))...)...)
			}

			// (1) History independence.
			svcOrder := shuffled(rng, services)
			sliceOrder := shuffled(rng, sliceObjs)
			fresh := freshSnapshot(svcOrder, sliceOrder)
			if diff := cmp.Diff(contentOf(fresh), contentOf(snap), cmpOpts...); diff != "" {
				fail("snapshot differs from a fresh tracker's (-fresh +got):\n%s", diff)
			}

			// (2) Changed is exactly the difference.
			want := map[ServicePortName]struct{}{}
			for _, s := range []*Snapshot{prev, snap} {
				for name := range s.Services {
					if !prev.Services[name].Equal(snap.Services[name]) || !endpointsEqual(prev.Endpoints[name], snap.Endpoints[name]) {
						want[name] = struct{}{}
					}
				}
			}
			if diff := cmp.Diff(want, snap.Changed, cmpOpts...); diff != "" {
				fail("Changed (-want +got):\n%s", diff)
			}
			// Trigger times only for services with a changed port.
			for key := range snap.TriggerTimes {
				if !slices.ContainsFunc(snap.SortedChanged(), func(n ServicePortName) bool { return n.NamespacedName == key }) {
					fail("trigger time for %v, which has no changed port", key)
				}
			}
			prev = snap
		}
	}
}

func shuffled[T any](rng *rand.Rand, in []T) []T {
	out := slices.Clone(in)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// randomEvent applies one random event to tr and to the model lists, and describes it.
// The universe is small on purpose, so that events often collide: three services, two
// slices each, a handful of addresses shared between slices.
func randomEvent(rng *rand.Rand, tr *Tracker, services *[]*v1.Service, sliceObjs *[]*discovery.EndpointSlice) string {
	name := []string{"a", "b", "c"}[rng.IntN(3)]
	switch rng.IntN(5) {
	case 0, 1:
		svc := randomService(rng, name)
		_ = tr.OnServiceUpdate(svc)
		*services = upsertService(*services, svc)
		return fmt.Sprintf("update service %s %+v", name, svc.Spec)
	case 2:
		svc := makeService("ns", name)
		tr.OnServiceDelete(svc)
		*services = removeService(*services, svc)
		return "delete service " + name
	case 3:
		slice := randomSlice(rng, name)
		_ = tr.OnEndpointSliceUpdate(slice)
		*sliceObjs = upsertSlice(*sliceObjs, slice)
		return fmt.Sprintf("update slice %s %v %v", slice.Name, describeSlice(slice), slice.Annotations)
	default:
		slice := makeSlice("ns", name, fmt.Sprintf("%s-%d", name, rng.IntN(2)), nil)
		tr.OnEndpointSliceDelete(slice)
		*sliceObjs = removeSlice(*sliceObjs, slice)
		return "delete slice " + slice.Name
	}
}

func randomService(rng *rand.Rand, name string) *v1.Service {
	return makeService("ns", name, func(s *v1.Service) {
		s.Spec.ClusterIP = fmt.Sprintf("10.96.0.%d", 1+rng.IntN(2))
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		switch rng.IntN(4) {
		case 0:
			s.Spec.Ports = []v1.ServicePort{{Name: "http", Port: 80}}
		case 1:
			s.Spec.Ports = []v1.ServicePort{{Name: "http", Port: 80}, {Name: "metrics", Port: 9090}}
		case 2:
			s.Spec.Ports = []v1.ServicePort{{Name: "metrics", Port: 9090}, {Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}
		case 3:
			s.Spec.Ports = []v1.ServicePort{{Port: 81}}
		}
		if rng.IntN(4) == 0 {
			s.Spec.Type = v1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		}
		if rng.IntN(6) == 0 {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ClusterIPNone, nil
		}
	})
}

func randomSlice(rng *rand.Rand, service string) *discovery.EndpointSlice {
	var eps []discovery.Endpoint
	for range rng.IntN(4) {
		e := makeEndpoint(fmt.Sprintf("10.244.1.%d", 1+rng.IntN(4)), []string{"node-a", "node-b", ""}[rng.IntN(3)])
		switch rng.IntN(4) {
		case 0:
			terminating(true)(&e)
		case 1:
			e.Conditions.Ready = ptr(rng.IntN(2) == 0)
		}
		if rng.IntN(3) == 0 {
			e.Hints = &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "zone-b"}, {Name: "zone-a"}}}
		}
		eps = append(eps, e)
	}
	return makeSlice("ns", service, fmt.Sprintf("%s-%d", service, rng.IntN(2)), eps, func(s *discovery.EndpointSlice) {
		switch rng.IntN(4) {
		case 0:
			slicePorts(s)
		case 1:
			s.Ports = []discovery.EndpointPort{{Port: ptr[int32](8081)}}
		case 2:
			s.Ports = []discovery.EndpointPort{{Name: ptr("dns"), Port: ptr[int32](5353), Protocol: ptr(v1.ProtocolUDP)}}
		}
		if rng.IntN(3) == 0 {
			s.Annotations = map[string]string{TriggerTimeAnnotation: time.Unix(int64(rng.IntN(100)), 0).UTC().Format(time.RFC3339Nano)}
		}
	})
}

func describeSlice(s *discovery.EndpointSlice) string {
	var parts []string
	for _, e := range s.Endpoints {
		node := ""
		if e.NodeName != nil {
			node = *e.NodeName
		}
		parts = append(parts, fmt.Sprintf("%s@%s(r=%v,t=%v)", e.Addresses[0], node, e.Conditions.Ready != nil && !*e.Conditions.Ready, e.Conditions.Terminating != nil))
	}
	var ports []string
	for _, p := range s.Ports {
		name := "<nil>"
		if p.Name != nil {
			name = *p.Name
		}
		ports = append(ports, fmt.Sprintf("%s=%d", name, *p.Port))
	}
	return strings.Join(parts, ",") + " ports " + strings.Join(ports, ",")
}
