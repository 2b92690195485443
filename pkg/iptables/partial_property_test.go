package iptables

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// TestPartialEqualsFull is the property that makes partial syncs safe: for random
// sequences of Service and EndpointSlice changes, applying each partial payload on top
// of the tables the previous sync left gives exactly the tables that a fresh full render
// gives. "Exactly" allows one thing, documented on RenderPartial: the order of rules
// inside the shared dispatch chains, where every rule matches a distinct destination.
// The node-ports jump must still be the last rule of nat KUBE-SERVICES.
func TestPartialEqualsFull(t *testing.T) {
	const sequences, steps = 150, 25
	for seed := range uint64(sequences) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			cfg := testConfig()
			if seed%3 == 0 {
				cfg.MasqueradeAll = true
			}
			world := newRandomWorld(rng)
			tracker := endpoints.NewTracker(testNode)
			kernel := ruleset.New(ruleset.IPv4)

			prev := tracker.Snapshot()
			initial := Render(prev, cfg, nil)
			if err := kernel.Apply(initial.Payload, true); err != nil {
				t.Fatalf("initial full render does not load: %v", err)
			}
			// The rule counts the Proxier keeps for sync_proxy_rules_iptables_total.
			filterRules, natRules := initial.Stats.FilterRules, initial.Stats.NATRules
			for step := range steps {
				var ops []string
				for range 1 + rng.IntN(3) {
					ops = append(ops, world.mutate(rng, tracker))
				}
				next := tracker.Snapshot()
				plan := RenderPartial(prev, next, next.SortedChanged(), cfg)
				if err := kernel.Apply(plan.Payload, true); err != nil {
					t.Fatalf("step %d (%s): partial payload rejected: %v\n%s", step, strings.Join(ops, "; "), err, plan.Payload)
				}
				fresh := ruleset.New(ruleset.IPv4)
				full := Render(next, cfg, nil)
				if err := fresh.Apply(full.Payload, true); err != nil {
					t.Fatalf("step %d: full payload rejected: %v", step, err)
				}
				// mutation-checked: ignoring the owned chains' rules in ruleCounts fails this.
				filterRules += plan.Stats.FilterDelta
				natRules += plan.Stats.NATDelta
				if filterRules != full.Stats.FilterRules || natRules != full.Stats.NATRules {
					t.Fatalf("step %d (%s): rule counts after partial renders filter %d nat %d, a full render has %d and %d",
						step, strings.Join(ops, "; "), filterRules, natRules, full.Stats.FilterRules, full.Stats.NATRules)
				}
				got, want := canonicalTables(t, kernel), canonicalTables(t, fresh)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("step %d (%s): partial != full (-full +partial):\n%s\npartial payload:\n%s", step, strings.Join(ops, "; "), diff, plan.Payload)
				}
				prev = next
			}
		})
	}
}

// dispatchChains are the shared chains whose rule order may differ after partial syncs.
var dispatchChains = []string{ChainServices, ChainNodePorts, ChainExternalServices, ChainProxyFirewall}

// canonicalTables prints a ruleset with the rules of the dispatch chains sorted, after
// checking that the node-ports jump is the last rule of nat KUBE-SERVICES.
func canonicalTables(t *testing.T, rs *ruleset.Ruleset) string {
	t.Helper()
	if c := rs.Chain("nat", ChainServices); c != nil && len(c.Rules) > 0 {
		if last := c.Rules[len(c.Rules)-1]; !strings.Contains(last.String(), "kubernetes service nodeports") {
			t.Fatalf("last rule of nat KUBE-SERVICES is %q, want the node-ports jump", last)
		}
	}
	lines := strings.Split(rs.Save(), "\n")
	var out []string
	for i := 0; i < len(lines); {
		chain := dispatchChainOf(lines[i])
		if chain == "" {
			out = append(out, lines[i])
			i++
			continue
		}
		j := i
		for j < len(lines) && dispatchChainOf(lines[j]) == chain {
			j++
		}
		run := slices.Clone(lines[i:j])
		slices.Sort(run)
		out = append(out, run...)
		i = j
	}
	return strings.Join(out, "\n")
}

func dispatchChainOf(line string) string {
	for _, c := range dispatchChains {
		if strings.HasPrefix(line, "-A "+c+" ") {
			return c
		}
	}
	return ""
}

// randomWorld is the cluster state a property test mutates at random.
type randomWorld struct {
	services map[string]*v1.Service
	slices   map[string]*discovery.EndpointSlice
}

func newRandomWorld(*rand.Rand) *randomWorld {
	return &randomWorld{services: map[string]*v1.Service{}, slices: map[string]*discovery.EndpointSlice{}}
}

var randomNames = []string{"a", "b", "c", "d", "e", "f"}

// mutate applies one random change to the world and feeds it to the tracker. It
// returns a description for failure messages.
func (w *randomWorld) mutate(rng *rand.Rand, tracker *endpoints.Tracker) string {
	name := randomNames[rng.IntN(len(randomNames))]
	switch rng.IntN(6) {
	case 0, 1: // create or change a service
		svc := w.randomService(rng, name)
		w.services[name] = svc
		if err := tracker.OnServiceUpdate(svc); err != nil {
			panicOnTestBug(err)
		}
		return "update service " + name
	case 2: // delete a service
		if svc, ok := w.services[name]; ok {
			delete(w.services, name)
			tracker.OnServiceDelete(svc)
		}
		return "delete service " + name
	case 3, 4: // change endpoints
		slice := w.randomSlice(rng, name)
		w.slices[name] = slice
		if err := tracker.OnEndpointSliceUpdate(slice); err != nil {
			panicOnTestBug(err)
		}
		return fmt.Sprintf("set %d endpoints of %s", len(slice.Endpoints), name)
	default: // delete endpoints
		if slice, ok := w.slices[name]; ok {
			delete(w.slices, name)
			tracker.OnEndpointSliceDelete(slice)
		}
		return "delete endpoints of " + name
	}
}

// panicOnTestBug stops the test when the generator itself made an invalid object.
func panicOnTestBug(err error) { panic(fmt.Sprintf("random world made an invalid object: %v", err)) }

func (w *randomWorld) randomService(rng *rand.Rand, name string) *v1.Service {
	ip := fmt.Sprintf("172.30.0.%d", 10+slices.Index(randomNames, name))
	return makeService("ns", name, ip, func(s *v1.Service) {
		s.Spec.Ports[0].Port = int32(80 + rng.IntN(2))
		if rng.IntN(2) == 0 {
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP})
		}
		switch rng.IntN(4) {
		case 1:
			s.Spec.Type = v1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = int32(30000 + slices.Index(randomNames, name))
		case 2:
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.Ports[0].NodePort = int32(30000 + slices.Index(randomNames, name))
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.113.%d", 10+slices.Index(randomNames, name))}}
			if rng.IntN(2) == 0 {
				s.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24", "192.168.0.0/16"}[:1+rng.IntN(2)]
			}
		case 3:
			s.Spec.ExternalIPs = []string{fmt.Sprintf("192.0.2.%d", 10+slices.Index(randomNames, name))}
		}
		if rng.IntN(3) == 0 && (s.Spec.Type != v1.ServiceTypeClusterIP || len(s.Spec.ExternalIPs) > 0) {
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			if s.Spec.Type == v1.ServiceTypeLoadBalancer {
				s.Spec.HealthCheckNodePort = int32(32000 + slices.Index(randomNames, name))
			}
		}
		if rng.IntN(4) == 0 {
			s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		}
		if rng.IntN(4) == 0 {
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60 + rng.IntN(2)))}}
		}
	})
}

func (w *randomWorld) randomSlice(rng *rand.Rand, name string) *discovery.EndpointSlice {
	var eps []ep
	for range rng.IntN(5) {
		// Reuse a small address pool so that endpoints come and go with the same names.
		e := ep{IP: fmt.Sprintf("10.180.%d.%d", rng.IntN(2), 1+rng.IntN(4)), Node: []string{testNode, otherNode}[rng.IntN(2)]}
		switch rng.IntN(5) {
		case 0:
			e.NotReady = true
		case 1:
			e.NotReady, e.Terminating = true, true
		case 2:
			e.NotReady, e.Terminating, e.NotServing = true, true, true
		}
		if rng.IntN(4) == 0 {
			e.ZoneHints = []string{[]string{testZone, "zone-b"}[rng.IntN(2)]}
		}
		eps = append(eps, e)
	}
	slice := makeSlice("ns", name, name+"-1", int32(8080+rng.IntN(2)), eps...)
	slice.Ports = append(slice.Ports, discovery.EndpointPort{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)})
	return slice
}
