package nftables

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
)

// fakeClock is a settable clock.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// newTestProxier returns a Proxier over a fresh fake kernel.
func newTestProxier(t *testing.T, cfg *Config) (*Proxier, *knftables.Fake, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	fake := newFake(cfg)
	p, err := NewProxier(cfg, fake, 0, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return p, fake, clock
}

func mustSync(t *testing.T, p *Proxier, snap *endpoints.Snapshot, wantFull bool) SyncResult {
	t.Helper()
	res, err := p.SyncDetailed(context.Background(), snap)
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, res.Transaction)
	}
	if res.Full != wantFull {
		t.Fatalf("sync full=%v (%s), want %v", res.Full, res.Reason, wantFull)
	}
	return res
}

// randomService is one of a few Services whose spec a seed picks: type, policies,
// affinity and a second port vary, so that partial syncs meet every kind of change.
func randomService(r *rand.Rand, i int) *v1.Service {
	name := fmt.Sprintf("s%d", i)
	return makeService("ns", name, fmt.Sprintf("172.30.0.%d", 10+i), func(s *v1.Service) {
		switch r.IntN(4) {
		case 1:
			s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeNodePort, int32(30000+i)
		case 2:
			s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeLoadBalancer, int32(30000+i)
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.113.%d", 20+i)}}
			if r.IntN(2) == 0 {
				s.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
			}
		case 3:
			s.Spec.ExternalIPs = []string{fmt.Sprintf("203.0.113.%d", 10+i)}
		}
		if s.Spec.Type != v1.ServiceTypeClusterIP && r.IntN(2) == 0 {
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		}
		if r.IntN(4) == 0 {
			s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		}
		if r.IntN(3) == 0 {
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60 * (1 + r.IntN(2))))}}
		}
		if r.IntN(3) == 0 { // a second port: its cluster IP element is shared
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "p81", Port: 81, Protocol: v1.ProtocolTCP})
		}
	})
}

// randomSlice picks some of four endpoints (two on this node, shared by every
// service, so hairpin elements are shared too), some of them terminating.
func randomSlice(r *rand.Rand, i int) *discovery.EndpointSlice {
	pool := []ep{{IP: "10.180.0.1", Node: testNode}, {IP: "10.180.0.2", Node: testNode}, {IP: "10.180.1.1", Node: otherNode}, {IP: "10.180.1.2", Node: otherNode}}
	var eps []ep
	for _, e := range pool {
		if r.IntN(2) == 0 {
			e.Terminating = r.IntN(4) == 0
			e.NotReady = e.Terminating
			eps = append(eps, e)
		}
	}
	s := makeSlice("ns", fmt.Sprintf("s%d", i), fmt.Sprintf("s%d-1", i), 8080, eps...)
	s.Ports = append(s.Ports, discovery.EndpointPort{Name: ptr.To("p81"), Port: ptr.To[int32](8081), Protocol: ptr.To(v1.ProtocolTCP)})
	return s
}

// canonicalDump is a fake's dump in nftmodel's canonical form: objects sorted by
// name and elements sorted (the fake lists elements in insertion order), rules in
// order.
func canonicalDump(t *testing.T, dump string) string {
	t.Helper()
	rs, err := nftmodel.Parse(dump)
	if err != nil {
		t.Fatalf("nftmodel rejects the table: %v\n%s", err, dump)
	}
	return nftmodel.Canonical(rs)
}

// withoutChains drops the declarations of the named (flushed, empty) chains from a
// dump.
func withoutChains(dump string, names []string) string {
	drop := map[string]bool{}
	for _, n := range names {
		drop[n] = true
	}
	var kept []string
	for _, line := range strings.Split(dump, "\n") {
		if name, ok := strings.CutPrefix(line, "add chain ip kube-proxy "); ok && drop[name] {
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "\n")
}

// TestPartialSyncsEqualFullRender applies random sequences of Service and
// EndpointSlice changes with partial syncs, and after each compares the table (as
// knftables.Fake dumps it, apart from flushed chains waiting for deletion) with a
// fresh full render of the same snapshot. The fake is strict: it rejects a rule naming
// a missing chain or set, and deleting what does not exist.
//
// mutation-checked: dropping every owner of a shared element when one of them goes
// (owners.without returning nil) fails it. (Not rewriting the chains that name a
// recreated affinity set passes here, since the fake lets a set in use be deleted;
// test/nftkernel's TestProxierInTheKernel catches it in a real kernel.)
func TestPartialSyncsEqualFullRender(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			cfg := testConfig()
			if seed%2 == 1 {
				// Odd seeds with kube-proxy's localhost node-port rejects, whose map
				// elements follow the node ports through partial syncs.
				cfg.LocalhostNodePortRejects = LocalhostNodePortRejects(true, false)
			}
			p, fake, clock := newTestProxier(t, cfg)
			tracker := endpoints.NewTracker(testNode)
			const services = 5
			for i := range services {
				if err := tracker.OnServiceUpdate(randomService(r, i)); err != nil {
					t.Fatal(err)
				}
				if err := tracker.OnEndpointSliceUpdate(randomSlice(r, i)); err != nil {
					t.Fatal(err)
				}
			}
			mustSync(t, p, tracker.Snapshot(), true)
			for step := range 25 {
				i := r.IntN(services)
				var change string
				switch r.IntN(5) {
				case 0, 1:
					change = "slice"
					if err := tracker.OnEndpointSliceUpdate(randomSlice(r, i)); err != nil {
						t.Fatal(err)
					}
				case 2:
					change = "service"
					if err := tracker.OnServiceUpdate(randomService(r, i)); err != nil {
						t.Fatal(err)
					}
				case 3:
					change = "delete service"
					tracker.OnServiceDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}})
				case 4:
					change = "delete slice"
					tracker.OnEndpointSliceDelete(&discovery.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("s%d-1", i),
						Labels: map[string]string{discovery.LabelServiceName: fmt.Sprintf("s%d", i)}}})
				}
				clock.now = clock.now.Add(time.Duration(r.IntN(3)) * time.Second / 2)
				snap := tracker.Snapshot()
				res := mustSync(t, p, snap, false)

				fresh := newFake(cfg)
				applyFull(t, fresh, snap, cfg, true)
				got := canonicalDump(t, withoutChains(fake.Dump(), p.StaleChains()))
				if diff := cmp.Diff(canonicalDump(t, fresh.Dump()), got); diff != "" {
					t.Fatalf("step %d (%s s%d): partial syncs differ from a full render (-full +partial):\n%s\ntransaction:\n%s", step, change, i, diff, res.Transaction)
				}
			}
		})
	}
}
