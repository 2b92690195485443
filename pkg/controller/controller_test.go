package controller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	conntracktest "github.com/switchyard-io/switchyard/pkg/conntrack/testing"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// IP plan: node "node1" at 192.168.0.2, service CIDR 172.30.0.0/16, pods 10.180.0.0/16.

func testNode() *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1"},
		Status:     v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "192.168.0.2"}}},
	}
}

func testService(name, ip string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
}

func testSlice(service string, ips ...string) *discovery.EndpointSlice {
	slice := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: service + "-1",
			Labels:      map[string]string{discovery.LabelServiceName: service},
			Annotations: map[string]string{v1.EndpointsLastChangeTriggerTime: time.Now().UTC().Format(time.RFC3339Nano)},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{Addresses: []string{ip}, NodeName: ptr.To("node1")})
	}
	return slice
}

// harness runs a Controller over a fake API server and a fake kernel.
type harness struct {
	t      *testing.T
	c      *Controller
	client *fake.Clientset
	fakes  *xtablestest.Fake
	flows  *conntracktest.Fake
	cancel context.CancelFunc
	done   chan error
}

func startController(t *testing.T, objects ...any) *harness {
	t.Helper()
	cfg := Defaults()
	cfg.MinSyncPeriod = 10 * time.Millisecond
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	cfg.CanaryInterval = 50 * time.Millisecond
	client := fake.NewClientset()
	h := &harness{t: t, client: client, fakes: xtablestest.NewFake(ruleset.IPv4), flows: &conntracktest.Fake{}, done: make(chan error, 1)}
	h.c = newController(cfg, "node1", client)
	h.c.newIPTables = func(context.Context, v1.IPFamily) (xtables.Interface, error) { return h.fakes, nil }
	// Never touch the host's conntrack table or sysctls from a unit test.
	h.c.conntrack = h.flows
	h.c.kernel = fakeNodeKernel(nil)
	h.c.probeNFAcct = func() (nfacct.Interface, error) { return nil, nfacct.ErrNotSupported }
	for _, obj := range objects {
		h.create(obj)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Error("controller did not stop within 10s of cancellation")
		}
	})
	return h
}

func (h *harness) create(obj any) {
	h.t.Helper()
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *v1.Node:
		_, err = h.client.CoreV1().Nodes().Create(ctx, o, metav1.CreateOptions{})
	case *v1.Service:
		_, err = h.client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *discovery.EndpointSlice:
		_, err = h.client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

// waitForRules waits until the fake kernel's nat table satisfies ok.
func (h *harness) waitForRules(what string, ok func(nat string) bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var nat []byte
	for time.Now().Before(deadline) {
		var err error
		if nat, err = h.fakes.SaveTable(context.Background(), "nat"); err == nil && ok(string(nat)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s; nat table:\n%s", what, nat)
}

func TestControllerProgramsAndFollowsChanges(t *testing.T) {
	h := startController(t, testNode(), testService("web", "172.30.0.10"), testSlice("web", "10.180.0.1"))
	h.waitForRules("the web service", func(nat string) bool {
		return strings.Contains(nat, "--to-destination 10.180.0.1:8080") && strings.Contains(nat, "-j KUBE-SERVICES")
	})

	// An endpoint change is a partial sync that adds the new endpoint.
	slice := testSlice("web", "10.180.0.1", "10.180.0.2")
	if _, err := h.client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForRules("the second endpoint", func(nat string) bool { return strings.Contains(nat, "--to-destination 10.180.0.2:8080") })
	restores := h.fakes.Restores()
	if last := string(restores[len(restores)-1]); strings.Contains(last, ":KUBE-POSTROUTING") {
		t.Errorf("an endpoint change triggered a full rewrite:\n%s", last)
	}

	// Deleting the Service removes every one of its rules.
	if err := h.client.CoreV1().Services("ns").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForRules("the web service to go", func(nat string) bool { return !strings.Contains(nat, "ns/web") })

	// Health: green after the first sync.
	rec := httptest.NewRecorder()
	h.c.health.HealthzHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/healthz = %d after successful syncs: %s", rec.Code, rec.Body)
	}
}

func TestControllerRecoversFromFailedRestore(t *testing.T) {
	h := startController(t, testNode(), testService("web", "172.30.0.10"), testSlice("web", "10.180.0.1"))
	h.waitForRules("the web service", func(nat string) bool { return strings.Contains(nat, "10.180.0.1:8080") })

	// The next two restores fail; the change must still land, through a full sync.
	h.fakes.FailNext("Restore", errInjected)
	h.fakes.FailNext("Restore", errInjected)
	slice := testSlice("web", "10.180.0.3")
	if _, err := h.client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForRules("the changed endpoint after two failed restores", func(nat string) bool {
		return strings.Contains(nat, "10.180.0.3:8080") && !strings.Contains(nat, "10.180.0.1:8080")
	})
	restores := h.fakes.Restores()
	if last := string(restores[len(restores)-1]); !strings.Contains(last, ":KUBE-POSTROUTING") {
		t.Errorf("the sync after a failure must be full, got:\n%s", last)
	}
}

func TestControllerResyncsWhenCanaryDisappears(t *testing.T) {
	h := startController(t, testNode(), testService("web", "172.30.0.10"), testSlice("web", "10.180.0.1"))
	h.waitForRules("the web service", func(nat string) bool { return strings.Contains(nat, "10.180.0.1:8080") })

	// Someone flushes the tables (a firewall reload): canaries and rules are gone.
	for _, table := range []xtables.Table{"nat", "filter", "mangle"} {
		if err := h.fakes.DeleteChain(context.Background(), table, xtables.ChainCanary); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.fakes.Restore(context.Background(), []byte("*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	h.waitForRules("the rules to be rewritten", func(nat string) bool {
		return strings.Contains(nat, "-A KUBE-SERVICES") && strings.Contains(nat, "10.180.0.1:8080") && strings.Contains(nat, ":"+string(xtables.ChainCanary))
	})
}

var errInjected = errorString("injected restore failure")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestControllerReportsInvalidServices checks that a partly invalid Service is still
// programmed and that its owner is told, with an Event on the Service.
func TestControllerReportsInvalidServices(t *testing.T) {
	bad := testService("bad", "172.30.0.11")
	bad.Spec.ExternalIPs = []string{"not-an-ip"}
	h := startController(t, testNode(), bad, testSlice("bad", "10.180.0.5"))
	h.waitForRules("the valid part of the bad service", func(nat string) bool { return strings.Contains(nat, "10.180.0.5:8080") })

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		events, err := h.client.CoreV1().Events("ns").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == "bad" && e.Reason == endpoints.ReasonInvalidExternalIP && strings.Contains(e.Message, "not-an-ip") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no InvalidExternalIP event for ns/bad")
}

// TestControllerDeletesStaleUDPFlows checks that after an endpoint of a UDP service goes
// away, conntrack entries still pointing at it are deleted, and others are kept.
func TestControllerDeletesStaleUDPFlows(t *testing.T) {
	dns := testService("dns", "172.30.0.53")
	dns.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}
	slice := func(ips ...string) *discovery.EndpointSlice {
		s := testSlice("dns", ips...)
		s.Ports = []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}}
		return s
	}
	h := startController(t, testNode(), dns, slice("10.180.0.1", "10.180.0.2"))
	h.waitForRules("the dns service", func(nat string) bool { return strings.Contains(nat, "10.180.0.2:53") })

	toGone := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.53:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	toKept := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.53:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.2:53")}
	h.flows.Add(toGone, toKept)
	if _, err := h.client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), slice("10.180.0.2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		flows := h.flows.Flows()
		if len(flows) == 1 {
			if flows[0] != toKept {
				t.Fatalf("kept %+v, want %+v", flows[0], toKept)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("stale flow not deleted; table: %+v", h.flows.Flows())
}

// TestControllerRetriesFailedConntrackCleanup checks that a cleanup that failed is not
// forgotten: the next sync, even one that changed no UDP service, cleans from the same
// base, so the entry left stale by the failed cleanup goes.
//
// mutation-checked: advancing lastSynced after a failed cleanup fails this (the TCP
// change's sync then reads nothing and the stale entry stays).
func TestControllerRetriesFailedConntrackCleanup(t *testing.T) {
	dns := testService("dns", "172.30.0.53")
	dns.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}
	slice := func(ips ...string) *discovery.EndpointSlice {
		s := testSlice("dns", ips...)
		s.Ports = []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}}
		return s
	}
	h := startController(t, testNode(), dns, slice("10.180.0.1", "10.180.0.2"))
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; table: %+v", what, h.flows.Flows())
			}
		}
	}
	waitFor("the start-up cleanup", func() bool { return h.flows.Scans() >= 1 })

	toGone := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.53:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	h.flows.Add(toGone)
	h.flows.FailNext("DeleteStale", errors.New("netlink: injected"))
	if _, err := h.client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), slice("10.180.0.2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the failed cleanup", func() bool { return h.flows.Pending("DeleteStale") == 0 })
	if len(h.flows.Flows()) != 1 {
		t.Fatalf("the failed cleanup deleted something: %+v", h.flows.Flows())
	}
	h.create(testService("web", "172.30.0.80")) // a TCP service: no UDP change
	waitFor("the retried cleanup", func() bool { return len(h.flows.Flows()) == 0 })
}
