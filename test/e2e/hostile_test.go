package e2e

// IP plan: the suite's (iptables_test.go). One node, node-1 (10.250.0.11), with pods
// h1 and h2; the outside client 10.251.0.100 reaches 10.252.0.0/24 through node-1,
// where 10.252.0.50 is the load-balancer IP of the source-ranges case. The big slice's
// 1,000 endpoints are addresses in 10.244.200.0/22 where nothing answers: only their
// rules are checked.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// hostileLBIP is the load-balancer IP of the source-ranges case.
const hostileLBIP = "10.252.0.50"

// hostileFixture is TestHostileInput's cluster.
type hostileFixture struct {
	c      *testbed.Cluster
	node   *testbed.Node
	h1, h2 *testbed.Pod
	sy     *testbed.Switchyard
	// problems are the objects Switchyard must report: "Kind/name" → Event reason
	// (also the reason label of switchyard_invalid_objects_total).
	problems map[string]string
	// refused records what the API server itself refuses, for the log.
	refused []string
}

// TestHostileInput creates, through a real kube-apiserver, the hostile and odd objects
// of docs/reliability.md ("Hostile input") next to a well-formed control Service, on a
// node whose Switchyard runs as the DaemonSet's ServiceAccount (manifests/deploy) with
// a 1 s informer resync. It asserts that Switchyard never crashes, /healthz stays 200,
// no iptables-restore is rejected, the control Service and every programmable case
// carry traffic (or, for the 1,000 unreachable endpoints, have their rules), and that
// each problem object gets exactly one Warning Event (count 1, after several resyncs)
// and one increment of switchyard_invalid_objects_total{kind,reason}, and no other
// object any. Values the API server refuses are recorded with the closest accepted
// variant.
//
// mutation-checked: without problemLog's deduplication (observe always reporting) the
// Event counts and the metric exceed 1 after the resyncs and this fails.
func TestHostileInput(t *testing.T) {
	testbed.Require(t)
	start := time.Now()
	c := testbed.StartControlPlane(t)
	f := &hostileFixture{c: c, problems: map[string]string{}}
	f.node = c.AddNode(t, "node-1", map[string]string{v1.LabelTopologyZone: "zone-a"})
	f.h1, f.h2 = c.AddPod(t, f.node, "h1"), c.AddPod(t, f.node, "h2")
	c.RouteFromOutside(t, testbed.ExternalCIDR, f.node)
	s := &suite{cluster: c, services: map[string]*v1.Service{}}
	if !t.Run("RBAC manifests", s.testRBAC) {
		t.FailNow()
	}
	f.sy = c.AddSwitchyard(t, f.node, testbed.SwitchyardOptions{ExtraArgs: []string{"--config-sync-period=1s"}})
	ctx := t.Context()

	control := s.createService(t, makeService("control", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	f.publish(t, control, f.h1, f.h2)
	if err := waitForPods(ctx, f.node, "tcp", hostPort(control.Spec.ClusterIP, 80), names(f.h1, f.h2), syncWait); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		run  func(t *testing.T, s *suite)
	}{
		{"a service with 120 ports", f.manyPorts},
		{"an EndpointSlice with 1000 endpoints", f.bigSlice},
		{"the same endpoint in two slices", f.duplicateEndpoint},
		{"addresses of the wrong family", f.wrongFamily},
		{"slices before their service", f.sliceFirst},
		{"two ports with one name and different protocols", f.twoProtocols},
		{"an extreme affinity timeout", f.extremeAffinity},
		{"an external IP equal to the node IP", f.externalIsNodeIP},
		{"source ranges the kernel would refuse as written", f.oddSourceRanges},
		{"an EndpointSlice without a service", f.orphanSlices},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, s) })
	}
	t.Run("still healthy, nothing rejected, control still served", func(t *testing.T) {
		if exited, err := f.sy.Process.Exited(); exited {
			t.Fatalf("switchyard exited: %v\n%s", err, f.sy.Process.Tail(30))
		}
		if status, body, err := f.sy.Healthz(ctx); err != nil || status != 200 {
			t.Errorf("/healthz = %d %q (%v), want 200", status, body, err)
		}
		if err := waitForPods(ctx, f.node, "tcp", hostPort(control.Spec.ClusterIP, 80), names(f.h1, f.h2), syncWait); err != nil {
			t.Error(err)
		}
		metrics, err := f.sy.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{
			"kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
			"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
		} {
			if v, _ := metricValue(metrics, name); v != 0 {
				t.Errorf("%s = %v, want 0: a hostile object made a restore fail", name, v)
			}
		}
		for line := range strings.SplitSeq(metrics, "\n") {
			if strings.HasPrefix(line, "switchyard_syncs_total{") && strings.Contains(line, `result="error"`) && !strings.HasSuffix(line, " 0") {
				t.Errorf("failed syncs: %s", line)
			}
		}
	})
	t.Run("one Event and one metric increment per problem object", f.checkReports)
	for _, r := range f.refused {
		t.Logf("refused by kube-apiserver: %s", r)
	}
	t.Logf("TestHostileInput: %s", time.Since(start).Round(time.Second))
}

// publish writes the service's slices with ready endpoints.
func (f *hostileFixture) publish(t *testing.T, svc *v1.Service, pods ...*testbed.Pod) {
	t.Helper()
	if err := f.c.PublishEndpoints(t.Context(), svc, ready(pods...)); err != nil {
		t.Fatal(err)
	}
}

// refuse checks that the API server refuses an object as invalid, and records it.
func (f *hostileFixture) refuse(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("%s: kube-apiserver answered %v, want it refused as invalid", what, err)
	}
	f.refused = append(f.refused, fmt.Sprintf("%s: %v", what, err))
}

// slice builds an EndpointSlice of addressType family for service (no label when
// service is ""), with port "http" 80 and the given addresses.
func slice(name, service string, family discoveryv1.AddressType, addresses ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{discoveryv1.LabelManagedBy: testbed.ManagedBy}},
		AddressType: family,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	if service != "" {
		s.Labels[discoveryv1.LabelServiceName] = service
	}
	for _, a := range addresses {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

func (f *hostileFixture) createSlice(ctx context.Context, s *discoveryv1.EndpointSlice) error {
	_, err := f.c.Clientset.DiscoveryV1().EndpointSlices(namespace).Create(ctx, s, metav1.CreateOptions{})
	return err
}

// natLines counts the lines of node-1's IPv4 nat table holding every one of parts.
func (f *hostileFixture) natLines(t *testing.T, parts ...string) int {
	t.Helper()
	out, err := f.node.Exec(t.Context(), "iptables-save", "-t", "nat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(out, "\n") {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			n++
		}
	}
	return n
}

// waitNATLines waits until natLines(parts) is want.
func (f *hostileFixture) waitNATLines(t *testing.T, want int, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(syncWait)
	for {
		got := f.natLines(t, parts...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nat rules with %q, want %d", got, parts, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// manyPorts: 120 ports (1000-1119, each to the pods' port 80) are all programmed and
// the first and last carry traffic.
func (f *hostileFixture) manyPorts(t *testing.T, s *suite) {
	svc := s.createService(t, makeService("many-ports", func(svc *v1.Service) {
		for i := range 120 {
			svc.Spec.Ports = append(svc.Spec.Ports, tcpPort(fmt.Sprintf("p%d", i), 1000+i, 80))
		}
	}))
	f.publish(t, svc, f.h1)
	for _, port := range []int{1000, 1119} {
		if err := waitForPods(t.Context(), f.node, "tcp", hostPort(svc.Spec.ClusterIP, port), names(f.h1), syncWait); err != nil {
			t.Fatal(err)
		}
	}
	f.waitNATLines(t, 120, "-A KUBE-SERVICES", namespace+"/many-ports:p", "cluster IP")
}

// bigSlice: one slice with the API's maximum of 1,000 endpoints gives 1,000 endpoint
// rules (nothing answers at those addresses).
func (f *hostileFixture) bigSlice(t *testing.T, s *suite) {
	svc := s.createService(t, makeService("big", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	var addresses []string
	for i := range 1000 {
		addresses = append(addresses, fmt.Sprintf("10.244.%d.%d", 200+i/250, i%250+1))
	}
	if err := f.createSlice(t.Context(), slice("big-1", svc.Name, discoveryv1.AddressTypeIPv4, addresses...)); err != nil {
		t.Fatal(err)
	}
	tooMany := slice("big-2", svc.Name, discoveryv1.AddressTypeIPv4, append(addresses, "10.244.210.1")...)
	f.refuse(t, "an EndpointSlice with 1001 endpoints", f.createSlice(t.Context(), tooMany))
	f.waitNATLines(t, 1000, "-j DNAT", namespace+"/big:http")
}

// duplicateEndpoint: h1 in two slices of one service is programmed once.
func (f *hostileFixture) duplicateEndpoint(t *testing.T, s *suite) {
	svc := s.createService(t, makeService("dup", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	for _, sl := range []*discoveryv1.EndpointSlice{
		slice("dup-a", svc.Name, discoveryv1.AddressTypeIPv4, f.h1.IP, f.h2.IP),
		slice("dup-b", svc.Name, discoveryv1.AddressTypeIPv4, f.h1.IP),
	} {
		if err := f.createSlice(t.Context(), sl); err != nil {
			t.Fatal(err)
		}
	}
	if err := waitForPods(t.Context(), f.node, "tcp", hostPort(svc.Spec.ClusterIP, 80), names(f.h1, f.h2), syncWait); err != nil {
		t.Fatal(err)
	}
	f.waitNATLines(t, 1, "-j DNAT", namespace+"/dup:http", "--to-destination "+f.h1.IP+":80")
}

// wrongFamily: the API refuses an IPv6 address in an IPv4 slice; the closest it
// accepts, an IPv6 slice for a single-stack IPv4 service, is left out of the IPv4
// rules while the IPv4 slice is served.
func (f *hostileFixture) wrongFamily(t *testing.T, s *suite) {
	svc := s.createService(t, makeService("wrong-family", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	f.refuse(t, "an IPv6 address in an IPv4 EndpointSlice",
		f.createSlice(t.Context(), slice("wrong-family-x", svc.Name, discoveryv1.AddressTypeIPv4, f.h1.IPv6)))
	f.refuse(t, "an IPv4 address in an IPv6 EndpointSlice",
		f.createSlice(t.Context(), slice("wrong-family-y", svc.Name, discoveryv1.AddressTypeIPv6, f.h1.IP)))
	for _, sl := range []*discoveryv1.EndpointSlice{
		slice("wrong-family-v6", svc.Name, discoveryv1.AddressTypeIPv6, f.h1.IPv6),
		slice("wrong-family-v4", svc.Name, discoveryv1.AddressTypeIPv4, f.h2.IP),
	} {
		if err := f.createSlice(t.Context(), sl); err != nil {
			t.Fatal(err)
		}
	}
	if err := waitForPods(t.Context(), f.node, "tcp", hostPort(svc.Spec.ClusterIP, 80), names(f.h2), syncWait); err != nil {
		t.Fatal(err)
	}
}

// sliceFirst: a slice created before its Service is held, and served as soon as the
// Service appears.
func (f *hostileFixture) sliceFirst(t *testing.T, s *suite) {
	if err := f.createSlice(t.Context(), slice("later-1", "later", discoveryv1.AddressTypeIPv4, f.h2.IP)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a few syncs with the slice alone
	svc := s.createService(t, makeService("later", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	if err := waitForPods(t.Context(), f.node, "tcp", hostPort(svc.Spec.ClusterIP, 80), names(f.h2), syncWait); err != nil {
		t.Fatal(err)
	}
}

// twoProtocols: the API refuses two ports named alike; the closest it accepts is one
// port number with TCP and UDP under two names, and both are served.
func (f *hostileFixture) twoProtocols(t *testing.T, s *suite) {
	_, err := f.c.CreateService(t.Context(), makeService("one-name", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{udpPort("dns", 53, 9376), tcpPort("dns", 53, 9376)}
	}))
	f.refuse(t, "two Service ports named dns (UDP and TCP)", unwrapStatus(err))
	svc := s.createService(t, makeService("two-protocols", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{udpPort("dns-udp", 53, 9376), tcpPort("dns-tcp", 53, 9376)}
	}))
	f.publish(t, svc, f.h1)
	for _, proto := range []string{"udp", "tcp"} {
		if err := waitForPods(t.Context(), f.node, proto, hostPort(svc.Spec.ClusterIP, 53), names(f.h1), syncWait); err != nil {
			t.Fatal(err)
		}
	}
}

// unwrapStatus returns the API status error inside the testbed's wrapping.
func unwrapStatus(err error) error {
	var status apierrors.APIStatus
	if err != nil && errors.As(err, &status) {
		return status.(error)
	}
	return err
}

// extremeAffinity: the API refuses 86401 s; 86400 s (a day) is programmed as such and
// keeps a client on one pod.
func (f *hostileFixture) extremeAffinity(t *testing.T, s *suite) {
	affinity := func(seconds int32) func(*v1.Service) {
		return func(svc *v1.Service) {
			svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(seconds)}}
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		}
	}
	_, err := f.c.CreateService(t.Context(), makeService("sticky-too-long", affinity(86401)))
	f.refuse(t, "sessionAffinityConfig.clientIP.timeoutSeconds 86401", unwrapStatus(err))
	svc := s.createService(t, makeService("sticky", affinity(86400)))
	f.publish(t, svc, f.h1, f.h2)
	f.waitNATLines(t, 2, namespace+"/sticky:http", "--seconds 86400 --reap")
	counts, err := testbed.Distribution(t.Context(), f.node, "tcp", hostPort(svc.Spec.ClusterIP, 80), 10)
	if err != nil || len(counts) != 1 {
		t.Fatalf("10 connections with a one-day affinity reached %v (%v), want one pod", counts, err)
	}
}

// externalIsNodeIP: an external IP equal to the node's own IP is programmed (as
// kube-proxy does): a pod reaches the service on nodeIP:8080, and the node's own
// /healthz on the same IP keeps answering.
func (f *hostileFixture) externalIsNodeIP(t *testing.T, s *suite) {
	svc := s.createService(t, makeService("node-ip", func(svc *v1.Service) {
		svc.Spec.ExternalIPs = []string{f.node.IP}
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 8080, 80)}
	}))
	f.publish(t, svc, f.h2)
	if err := waitForPods(t.Context(), f.h1, "tcp", hostPort(f.node.IP, 8080), names(f.h2), syncWait); err != nil {
		t.Fatal(err)
	}
	if status, _, err := f.sy.Healthz(t.Context()); err != nil || status != 200 {
		t.Fatalf("/healthz on the node IP = %d (%v) with the node IP as an external IP", status, err)
	}
}

// oddSourceRanges: each candidate range is offered to the API alone (dry run); the
// accepted ones go into one LoadBalancer Service together with one that admits the
// outside client. Written as they are, several would make iptables-restore refuse
// the whole payload (an IPv6 range in the IPv4 table, whitespace); Switchyard must
// normalise or skip them, report the ones it skips, and keep serving.
func (f *hostileFixture) oddSourceRanges(t *testing.T, s *suite) {
	ctx := t.Context()
	candidates := []string{" 10.251.0.0/24 ", "10.251.0.100/8", "fd00::/8", "::ffff:10.251.0.0/120", "::ffff:0:0/95", "010.251.000.000/24", "10.251.0.0/33"}
	accepted := []string{testbed.OutsideIP + "/32"}
	for i, r := range candidates {
		probe := makeService(fmt.Sprintf("range-probe-%d", i), func(svc *v1.Service) {
			svc.Spec.Type = v1.ServiceTypeLoadBalancer
			svc.Spec.LoadBalancerSourceRanges = []string{r}
			svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		})
		_, err := f.c.Clientset.CoreV1().Services(namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			f.refuse(t, fmt.Sprintf("loadBalancerSourceRanges %q", r), err)
			continue
		}
		t.Logf("kube-apiserver accepts loadBalancerSourceRanges %q", r)
		accepted = append(accepted, r)
		if r == "::ffff:0:0/95" {
			// An IPv4-mapped range shorter than /96 covers IPv6 addresses too:
			// Switchyard skips it and reports it.
			f.problems["Service/ranges"] = "InvalidSourceRange"
		}
	}
	svc := makeService("ranges", func(svc *v1.Service) {
		svc.Spec.Type = v1.ServiceTypeLoadBalancer
		svc.Spec.LoadBalancerSourceRanges = accepted
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: hostileLBIP}}
	})
	created := s.createService(t, svc)
	f.publish(t, created, f.h1)
	if err := waitForPods(ctx, f.c.Outside, "tcp", hostPort(hostileLBIP, 80), names(f.h1), syncWait); err != nil {
		t.Fatal(err)
	}
}

// orphanSlices: a slice without the kubernetes.io/service-name label belongs to no
// Service and one with an unparseable trigger-time annotation cannot be timed; the API
// accepts both, and each is a problem object reported once.
func (f *hostileFixture) orphanSlices(t *testing.T, s *suite) {
	if err := f.createSlice(t.Context(), slice("orphan", "", discoveryv1.AddressTypeIPv4, f.h1.IP)); err != nil {
		t.Fatal(err)
	}
	f.problems["EndpointSlice/orphan"] = "NoServiceLabel"
	badTime := slice("bad-trigger-time", "control", discoveryv1.AddressTypeIPv4, f.h1.IP)
	badTime.Annotations = map[string]string{v1.EndpointsLastChangeTriggerTime: "yesterday"}
	if err := f.createSlice(t.Context(), badTime); err != nil {
		t.Fatal(err)
	}
	f.problems["EndpointSlice/bad-trigger-time"] = "InvalidTriggerTime"
}

// checkReports waits for several informer resyncs (1 s each), then compares the
// Warning Events Switchyard wrote, and switchyard_invalid_objects_total, with the
// problem objects: exactly one Event of count 1 each, one increment each.
func (f *hostileFixture) checkReports(t *testing.T) {
	ctx := t.Context()
	time.Sleep(3500 * time.Millisecond)
	wantEvents := map[string]string{}
	wantMetric := map[string]float64{}
	for object, reason := range f.problems {
		wantEvents[object] = reason + " x1"
		kind, _, _ := strings.Cut(object, "/")
		wantMetric[fmt.Sprintf(`switchyard_invalid_objects_total{kind=%q,reason=%q}`, kind, reason)]++
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, err := f.c.Clientset.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gotEvents := map[string]string{}
		var all []string
		for _, e := range events.Items {
			if e.Source.Component != "switchyard" {
				continue
			}
			key := e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name
			all = append(all, fmt.Sprintf("%s %s %s x%d: %s", key, e.Type, e.Reason, e.Count, e.Message))
			if _, dup := gotEvents[key]; dup {
				gotEvents[key] += " and another"
				continue
			}
			gotEvents[key] = fmt.Sprintf("%s x%d", e.Reason, e.Count)
		}
		metrics, err := f.sy.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gotMetric := map[string]float64{}
		if family := parseMetrics(metrics)["switchyard_invalid_objects_total"]; family != nil {
			maps.Copy(gotMetric, family.series)
		}
		eventDiff, metricDiff := cmp.Diff(wantEvents, gotEvents), cmp.Diff(wantMetric, gotMetric)
		if eventDiff == "" && metricDiff == "" {
			for _, line := range all {
				t.Logf("event: %s", line)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Events by object (-want +got):\n%s\nswitchyard_invalid_objects_total (-want +got):\n%s\nall events:\n%s",
				eventDiff, metricDiff, strings.Join(all, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
