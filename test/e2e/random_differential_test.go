package e2e

// The randomised differential: node-6's Switchyard and a reference kube-proxy
// that believes it is node-6 (it runs in node-7's namespace with
// --hostname-override node-6) are fed generated worlds, and their
// iptables-save output is compared chain by chain. Both render for the same
// Node object, so every rule must match, apart from the differences listed in
// knownDifferences. Endpoints need no pods: rules depend only on the API
// objects. Load-balancer source ranges never hold a node address, since the
// two processes see different node IPs (kube-proxy takes node-7's from its
// bind address). The seed is printed; SWITCHYARD_DIFF_SEED replays one and
// SWITCHYARD_DIFF_WORLDS runs more worlds. mutation-checked: ordering endpoints
// numerically again (pkg/endpoints sortedByText) makes 34 of 399 chains differ for
// seed 1796175749872517548; before ServicePort.OfFamily, seed 1796175403284286500
// found IPv6 KUBE-EXT chains kube-proxy does not write.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// sharedChains are edited in place by Switchyard's partial syncs (rules of a
// changed service are inserted or appended where kube-proxy rewrites the whole
// chain), so their rules are compared as sets; every other chain in order.
var sharedChains = map[string]bool{
	"KUBE-SERVICES": true, "KUBE-NODEPORTS": true, "KUBE-EXTERNAL-SERVICES": true, "KUBE-PROXY-FIREWALL": true,
}

// knownDifferences are the chains the comparison leaves out on purpose:
// kubelet's chains, which kube-proxy does not own either.
var knownDifferences = map[string]string{
	"KUBE-KUBELET-CANARY": "kubelet's",
}

// worldGenerator draws services and endpoint slices from a seeded source.
type worldGenerator struct {
	r  *rand.Rand
	ns string
}

func (g *worldGenerator) pick(options ...string) string { return options[g.r.IntN(len(options))] }

// service draws one Service: every type and traffic policy, affinity, external
// IPs, load-balancer IPs with or without source ranges, one to three ports of
// TCP, UDP or SCTP, named target ports, single- or dual-stack.
func (g *worldGenerator) service(i int) *v1.Service {
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: fmt.Sprintf("svc-%02d", i)}}
	svc.Spec.Type = v1.ServiceType(g.pick("ClusterIP", "ClusterIP", "NodePort", "LoadBalancer"))
	switch g.r.IntN(3) {
	case 1:
		svc.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyPreferDualStack)
	case 2:
		svc.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
		if g.r.IntN(2) == 0 {
			svc.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol, v1.IPv4Protocol}
		}
	}
	if svc.Spec.Type != v1.ServiceTypeClusterIP && g.r.IntN(2) == 0 {
		svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}
	if g.r.IntN(4) == 0 {
		svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	}
	if g.r.IntN(4) == 0 {
		svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60 + g.r.IntN(10000)))}}
	}
	if g.r.IntN(5) == 0 {
		svc.Spec.ExternalIPs = []string{fmt.Sprintf("10.253.%d.%d", i, 1+g.r.IntN(200))}
	}
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("10.254.%d.%d", i, 1+g.r.IntN(200))}}
		if g.r.IntN(2) == 0 {
			svc.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24", fmt.Sprintf("203.0.113.%d/32", g.r.IntN(250))}
		}
	}
	protocols := []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP}
	for p := range 1 + g.r.IntN(3) {
		port := v1.ServicePort{Name: fmt.Sprintf("p%d", p), Protocol: protocols[g.r.IntN(3)], Port: int32(80 + 10*p + g.r.IntN(5))}
		if g.r.IntN(3) == 0 {
			port.TargetPort = intstr.FromString("named-" + port.Name)
		} else {
			port.TargetPort = intstr.FromInt32(int32(8000 + g.r.IntN(1000)))
		}
		svc.Spec.Ports = append(svc.Spec.Ports, port)
	}
	return svc
}

// slices draws one to three EndpointSlices per family of a created Service:
// endpoints on this node, another node and a third, every mix of ready,
// serving and terminating, zone hints on some, ports numbered per slice.
func (g *worldGenerator) slices(svc *v1.Service) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	if g.r.IntN(8) == 0 {
		return nil // a service without endpoints
	}
	hinted := g.r.IntN(4) == 0
	for _, family := range svc.Spec.IPFamilies {
		for s := range 1 + g.r.IntN(3) {
			slice := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: g.ns, Name: fmt.Sprintf("%s-%s-%d", svc.Name, strings.ToLower(string(family)), s),
					Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: testbed.ManagedBy},
				},
				AddressType: discoveryv1.AddressType(family),
			}
			for _, port := range svc.Spec.Ports {
				slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{
					Name: ptr.To(port.Name), Protocol: ptr.To(port.Protocol), Port: ptr.To(int32(8000 + g.r.IntN(1000))),
				})
			}
			for e := range g.r.IntN(5) {
				nodeIndex := []int{6, 2, 9}[g.r.IntN(3)]
				host := 2 + 10*s + e + g.r.IntN(3)*50
				address := fmt.Sprintf("10.244.%d.%d", nodeIndex, host)
				if family == v1.IPv6Protocol {
					address = fmt.Sprintf("fd00:244:%d::%x", nodeIndex, host)
				}
				ready, serving, terminating := true, true, false
				switch g.r.IntN(6) {
				case 0:
					ready, serving, terminating = false, true, true
				case 1:
					ready, serving, terminating = false, false, true
				case 2:
					ready, serving = false, false
				}
				endpoint := discoveryv1.Endpoint{
					Addresses:  []string{address},
					NodeName:   ptr.To(fmt.Sprintf("node-%d", nodeIndex)),
					Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating)},
				}
				if hinted {
					zone := map[int]string{6: "zone-a", 2: "zone-b", 9: "zone-c"}[nodeIndex]
					endpoint.Zone = ptr.To(zone)
					endpoint.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: zone}}}
				}
				slice.Endpoints = append(slice.Endpoints, endpoint)
			}
			out = append(out, slice)
		}
	}
	return out
}

// saveChains parses iptables-save output into "family table chain" -> rules;
// rules of shared chains and built-in chains are sorted, counters dropped.
func saveChains(dump, family string) map[string][]string {
	chains := map[string][]string{}
	table := ""
	for _, line := range strings.Split(dump, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":KUBE-"):
			name := strings.Fields(line[1:])[0]
			key := family + " " + table + " " + name
			if _, ok := chains[key]; !ok {
				chains[key] = []string{}
			}
		case strings.HasPrefix(line, "-A "):
			fields := strings.SplitN(line, " ", 3)
			name, rule := fields[1], ""
			if len(fields) == 3 {
				rule = fields[2]
			}
			if !strings.HasPrefix(name, "KUBE-") && !strings.Contains(rule, "KUBE-") {
				continue
			}
			key := family + " " + table + " " + name
			chains[key] = append(chains[key], rule)
		}
	}
	for key, rules := range chains {
		name := strings.Fields(key)[2]
		if sharedChains[name] || !strings.HasPrefix(name, "KUBE-") {
			slices.Sort(rules)
		}
		if _, skip := knownDifferences[name]; skip {
			delete(chains, key)
		}
	}
	return chains
}

func nodeChains(ctx context.Context, t *testing.T, node *testbed.Node) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for family, command := range map[string]string{"ipv4": "iptables-save", "ipv6": "ip6tables-save"} {
		dump, err := node.Exec(ctx, command)
		if err != nil {
			t.Fatalf("%s on %s: %v", command, node.Name, err)
		}
		for k, v := range saveChains(dump, family) {
			out[k] = v
		}
	}
	return out
}

// chainDiff describes how two chain maps differ, one line per chain.
// mentions reports whether any rule carries text, such as a service port's
// "ns/name:port" comment.
func mentions(chains map[string][]string, text string) bool {
	for _, rules := range chains {
		for _, r := range rules {
			if strings.Contains(r, text) {
				return true
			}
		}
	}
	return false
}

func chainDiff(want, got map[string][]string) []string {
	var diffs []string
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		w, inWant := want[k]
		g, inGot := got[k]
		switch {
		case !inGot:
			diffs = append(diffs, fmt.Sprintf("%s: only kube-proxy has it: %q", k, w))
		case !inWant:
			diffs = append(diffs, fmt.Sprintf("%s: only switchyard has it: %q", k, g))
		case !slices.Equal(w, g):
			diffs = append(diffs, fmt.Sprintf("%s:\n  kube-proxy %q\n  switchyard %q", k, w, g))
		}
	}
	return diffs
}

// testRandomDifferential compares node-6's Switchyard with a twin kube-proxy over
// generated worlds. Switchyard runs with --iptables-localhost-nodeports, kube-proxy's
// default, which Switchyard leaves off unless asked.
func (s *suite) testRandomDifferential(t *testing.T, f *datapathFixture) {
	ctx := t.Context()
	c := s.cluster
	node6 := f.node
	if err := f.restart(ctx, "--iptables-localhost-nodeports"); err != nil {
		t.Fatal(err)
	}
	node7 := c.AddNode(t, "node-7", map[string]string{v1.LabelTopologyZone: "zone-a"})
	// kube-proxy in node-7's namespace, believing it is node-6.
	twin := *node7
	twin.Name = node6.Name
	kp := c.AddKubeProxy(t, &twin, "iptables")
	t.Cleanup(func() { _ = kp.Process.Stop() })

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SWITCHYARD_DIFF_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SWITCHYARD_DIFF_SEED: %v", err)
		}
	}
	worlds := 1
	if v := os.Getenv("SWITCHYARD_DIFF_WORLDS"); v != "" {
		var err error
		if worlds, err = strconv.Atoi(v); err != nil || worlds < 1 {
			t.Fatalf("SWITCHYARD_DIFF_WORLDS=%q: want a count of at least 1", v)
		}
	}
	t.Logf("seed %d (replay with SWITCHYARD_DIFF_SEED=%d)", seed, seed)
	for w := range worlds {
		g := &worldGenerator{r: rand.New(rand.NewPCG(seed, uint64(w))), ns: fmt.Sprintf("diff-%d", w)}
		var created []*v1.Service
		for i := range 30 {
			svc := g.service(i)
			ingress := svc.Status.LoadBalancer.Ingress
			got, err := c.CreateService(ctx, svc)
			if err != nil {
				t.Fatalf("seed %d world %d: %v", seed, w, err)
			}
			if len(ingress) > 0 {
				got.Status.LoadBalancer.Ingress = ingress
				if got, err = c.Clientset.CoreV1().Services(g.ns).UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			created = append(created, got)
			for _, slice := range g.slices(got) {
				if _, err := c.Clientset.DiscoveryV1().EndpointSlices(g.ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
					t.Fatalf("seed %d world %d: %v", seed, w, err)
				}
			}
		}
		// Both proxies converge asynchronously: compare until equal, with the world's
		// last Service programmed by both (equal dumps from before the world would
		// compare nothing), or 15 s.
		last := g.ns + "/" + created[len(created)-1].Name + ":"
		var diffs []string
		var want, got map[string][]string
		deadline := time.Now().Add(15 * time.Second)
		for {
			want, got = nodeChains(ctx, t, node7), nodeChains(ctx, t, node6)
			diffs = chainDiff(want, got)
			done := len(diffs) == 0 && mentions(want, last) && mentions(got, last)
			if done || time.Now().After(deadline) {
				t.Logf("seed %d world %d: %d chains compared, %d differ", seed, w, len(want), len(diffs))
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !mentions(want, last) {
			t.Errorf("seed %d world %d: kube-proxy never programmed %s", seed, w, last)
		}
		for _, d := range diffs {
			t.Errorf("seed %d world %d: %s", seed, w, d)
		}
		for _, svc := range created {
			_ = c.Clientset.CoreV1().Services(g.ns).Delete(ctx, svc.Name, metav1.DeleteOptions{})
		}
		_ = c.Clientset.DiscoveryV1().EndpointSlices(g.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	}
}
