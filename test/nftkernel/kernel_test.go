// Package nftkernel loads what Switchyard's nftables mode renders into real kernels,
// inside network namespaces the tests create and delete: every nft call goes through a
// wrapper that runs `ip netns exec NS nft`, so nothing touches the host's namespace.
package nftkernel

// IP plan: node1 192.168.0.2 / fd00:192::2, pods 10.0.0.0/8 / fd00:10::/64 (node1's
// 10.180.0.x / fd00:10::a:x), services 172.30.0.0/16 / fd00:30::/108, external and
// load-balancer IPs 203.0.113.0/24 / 2001:db8::/64.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/node"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: loading nftables rules into network namespaces needs root (run `make e2e` as root)")
	}
	for _, prog := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is missing: install iproute2 and nftables (hack/ci-deps.sh)", prog)
		}
	}
}

// realNFT is the nft binary, found before any test puts a wrapper first on PATH: a
// wrapper, and nftIn, must run the real one, or a test with two namespaces would run
// the first namespace's wrapper inside the second and write into the first.
var realNFT, realNFTErr = exec.LookPath("nft")

// netnsNFT creates a network namespace, deleted at the end even on failure, and puts
// first on PATH an `nft` that runs the real one inside it. knftables finds nft on PATH
// when it is opened, so every Interface the test opens afterwards works in the
// namespace (one opened before keeps the namespace it found).
func netnsNFT(t *testing.T, suffix string) string {
	t.Helper()
	name := fmt.Sprintf("sy-nft-%d-%s", os.Getpid(), suffix)
	_ = exec.Command("ip", "netns", "del", name).Run() // left over from a killed run
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if realNFTErr != nil {
		t.Fatal(realNFTErr)
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nexec %s netns exec %s %s \"$@\"\n", ipPath, name, realNFT)
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return name
}

// nftIn runs the real nft inside ns.
func nftIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, realNFT}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// familyCase holds one family's addresses.
type familyCase struct {
	family                   v1.IPFamily
	nodeIP, podCIDR, svcCIDR string
	svc                      func(i int) string // the i-th cluster IP
	pod                      func(i int) string // the i-th pod IP on node1
	extIP, lbIP, sourceRange string
	addressType              discovery.AddressType
}

var families = []familyCase{
	{family: v1.IPv4Protocol, nodeIP: "192.168.0.2", podCIDR: "10.0.0.0/8", svcCIDR: "172.30.0.0/16",
		svc: func(i int) string { return fmt.Sprintf("172.30.0.%d", i) }, pod: func(i int) string { return fmt.Sprintf("10.180.0.%d", i) },
		extIP: "203.0.113.10", lbIP: "203.0.113.20", sourceRange: "198.51.100.0/24", addressType: discovery.AddressTypeIPv4},
	{family: v1.IPv6Protocol, nodeIP: "fd00:192::2", podCIDR: "fd00:10::/64", svcCIDR: "fd00:30::/108",
		svc: func(i int) string { return fmt.Sprintf("fd00:30::%x", i) }, pod: func(i int) string { return fmt.Sprintf("fd00:10::a:%x", i) },
		extIP: "2001:db8::10", lbIP: "2001:db8::20", sourceRange: "2001:db8:1::/64", addressType: discovery.AddressTypeIPv6},
}

func (f familyCase) config(restrictNodePorts bool) *nftables.Config {
	cfg := &nftables.Config{FamilyConfig: node.FamilyConfig{
		Family:  f.family,
		Node:    endpoints.NodeTopology{Name: "node1"},
		NodeIPs: []netip.Addr{netip.MustParseAddr(f.nodeIP)},
		Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix(f.podCIDR)),
	}, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix(f.svcCIDR)}}
	if restrictNodePorts {
		cfg.RestrictNodePorts = true
		cfg.NodePortIPs = []netip.Addr{netip.MustParseAddr(f.nodeIP)}
	}
	return cfg
}

// world is a tracker fed with Services and EndpointSlices of one family.
type world struct {
	t       *testing.T
	f       familyCase
	tracker *endpoints.Tracker
}

func (w *world) service(name string, i int, tweak func(*v1.Service)) {
	w.t.Helper()
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: w.f.svc(i), ClusterIPs: []string{w.f.svc(i)},
			IPFamilies: []v1.IPFamily{w.f.family},
			Ports:      []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
	if tweak != nil {
		tweak(svc)
	}
	if err := w.tracker.OnServiceUpdate(svc); err != nil {
		w.t.Fatal(err)
	}
}

// slice sets a service's endpoints: pod indexes on node1 (positive) or node2
// (negative), with port p80 on 8080 and the protocol of the service's port.
func (w *world) slice(name string, proto v1.Protocol, pods ...int) {
	w.t.Helper()
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name + "-1", Labels: map[string]string{discovery.LabelServiceName: name}},
		AddressType: w.f.addressType,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To[int32](8080), Protocol: ptr.To(proto)}},
	}
	for _, i := range pods {
		nodeName := "node1"
		if i < 0 {
			nodeName, i = "node2", -i+100
		}
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{w.f.pod(i)}, NodeName: ptr.To(nodeName),
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true)}})
	}
	if err := w.tracker.OnEndpointSliceUpdate(s); err != nil {
		w.t.Fatal(err)
	}
}

// populate adds a Service of every kind this mode renders differently.
func (w *world) populate() {
	f := w.f
	w.service("cluster", 1, nil)
	w.slice("cluster", v1.ProtocolTCP, 1, -2, 3)
	w.service("single", 2, nil)
	w.slice("single", v1.ProtocolTCP, 4)
	w.service("none", 3, nil)
	w.service("udp", 4, func(s *v1.Service) { s.Spec.Ports[0].Protocol = v1.ProtocolUDP })
	w.slice("udp", v1.ProtocolUDP, 5, 6)
	w.service("sctp", 5, func(s *v1.Service) { s.Spec.Ports[0].Protocol = v1.ProtocolSCTP })
	w.slice("sctp", v1.ProtocolSCTP, 7)
	w.service("nodeport", 6, func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeNodePort, 30006
		s.Spec.ExternalIPs = []string{f.extIP}
	})
	w.slice("nodeport", v1.ProtocolTCP, 8, -9)
	w.service("lb-local", 7, func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeLoadBalancer, 30007
		s.Spec.ExternalTrafficPolicy, s.Spec.HealthCheckNodePort = v1.ServiceExternalTrafficPolicyLocal, 32000
		s.Spec.LoadBalancerSourceRanges = []string{f.sourceRange}
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: f.lbIP}}
	})
	w.slice("lb-local", v1.ProtocolTCP, 10, -11)
	w.service("lb-remote-only", 8, func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeLoadBalancer, 30008
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		s.Spec.ExternalIPs = []string{f.extIP}
	})
	w.slice("lb-remote-only", v1.ProtocolTCP, -12)
	w.service("affinity", 9, func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](600)}}
	})
	w.slice("affinity", v1.ProtocolTCP, 13, 14)
	w.service("internal-local", 10, func(s *v1.Service) {
		s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	})
	w.slice("internal-local", v1.ProtocolTCP, -15)
}

// elementsIn lists the elements of the shared sets and maps as the kernel holds them.
func elementsIn(t *testing.T, nft knftables.Interface) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, c := range []struct{ kind, name string }{{"set", "cluster-ips"}, {"set", "hairpin-connections"}, {"map", "service-ips"},
		{"map", "service-nodeports"}, {"map", "no-endpoint-services"}, {"map", "no-endpoint-nodeports"}, {"map", "firewall-ips"}} {
		elems, err := nft.ListElements(context.Background(), c.kind, c.name)
		if err != nil {
			t.Fatalf("listing %s: %v", c.name, err)
		}
		if len(elems) == 0 {
			continue
		}
		out[c.name] = map[string]string{}
		for _, el := range elems {
			out[c.name][strings.Join(el.Key, " . ")] = strings.Join(el.Value, " . ")
		}
	}
	return out
}

// TestProxierInTheKernel runs nftables mode's Proxier against a real kernel in a
// namespace, per family and node-port setting: a full sync of every service kind, the
// element mirror equal to what the kernel lists, a one-endpoint partial sync, a
// removed affinity service whose chains are flushed then deleted a second later, a
// second Proxier taking the table over (base chains recreated while full of rules), the
// canary after `nft delete table`, and cleanup.
//
// mutation-checked (kernel 6.18): deleting a stale chain in the transaction that
// flushes it fails this test ("Could not process rule: Device or resource busy": the
// map element pointing to it is deleted later in that transaction); so does a partial
// render that forgets to delete the elements of a removed service (the mirror no longer
// equals the kernel's elements), and one that recreates affinity sets for a new timeout
// without rewriting the chains that name them ("Device or resource busy").
func TestProxierInTheKernel(t *testing.T) {
	requireRoot(t)
	for _, f := range families {
		for _, restrict := range []bool{false, true} {
			name := fmt.Sprintf("%s-restrict=%v", f.family, restrict)
			t.Run(name, func(t *testing.T) {
				ns := netnsNFT(t, strings.ToLower(string(f.family[:4]))+fmt.Sprint(restrict))
				testProxier(t, ns, f, f.config(restrict))
			})
		}
	}
}

func testProxier(t *testing.T, ns string, f familyCase, cfg *nftables.Config) {
	ctx := context.Background()
	viaNFT, err := knftables.New(cfg.NFTFamily(), nftables.TableName)
	if err != nil {
		t.Fatalf("knftables in %s: %v", ns, err)
	}
	nsFile, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nsFile.Close()
	// The Proxier's Kernel is the daemon's: writes through nft (the PATH wrapper),
	// reads over netlink in the namespace.
	nft, err := nftables.OpenIn(f.family, nsFile)
	if err != nil {
		t.Fatalf("nftables in %s: %v", ns, err)
	}
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	p, err := nftables.NewProxier(cfg, nft, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, f: f, tracker: endpoints.NewTracker("node1")}
	w.populate()

	res, err := p.SyncDetailed(ctx, w.tracker.Snapshot())
	if err != nil || !res.Full {
		t.Fatalf("first sync: full %v, %v\n%s", res.Full, err, res.Transaction)
	}
	if diff := cmp.Diff(p.AppliedElements(), elementsIn(t, viaNFT)); diff != "" {
		t.Errorf("mirror differs from the kernel's elements (-mirror +kernel):\n%s", diff)
	}
	if ok, err := p.CheckKernel(ctx); !ok || err != nil {
		t.Fatalf("canary after the first sync: %v, %v", ok, err)
	}
	sameReads(t, nft, viaNFT)
	checkFindsDrift(t, p, ns, cfg, nft, w.tracker.Snapshot)

	// One endpoint more: the partial transaction touches that service only.
	w.slice("cluster", v1.ProtocolTCP, 1, -2, 3, 16)
	res, err = p.SyncDetailed(ctx, w.tracker.Snapshot())
	if err != nil || res.Full {
		t.Fatalf("endpoint added: full %v, %v\n%s", res.Full, err, res.Transaction)
	}
	for _, line := range strings.Split(strings.TrimSpace(res.Transaction), "\n") {
		if !strings.Contains(line, "ns/cluster/") && !strings.Contains(line, "hairpin-connections") {
			t.Errorf("partial sync for one endpoint writes %q", line)
		}
	}
	if diff := cmp.Diff(p.AppliedElements(), elementsIn(t, viaNFT)); diff != "" {
		t.Errorf("mirror differs from the kernel after the partial sync (-mirror +kernel):\n%s", diff)
	}

	// A new affinity timeout recreates the sets, which the kernel allows only once
	// no rule names them: the service's chains are rewritten in the same
	// transaction.
	w.service("affinity", 9, func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](900)}}
	})
	if res, err := p.SyncDetailed(ctx, w.tracker.Snapshot()); err != nil || res.Full {
		t.Fatalf("affinity timeout changed: full %v, %v\n%s", res.Full, err, res.Transaction)
	}
	if listed := nftIn(t, ns, "list", "table", string(cfg.NFTFamily()), nftables.TableName); !strings.Contains(listed, "timeout 15m") {
		t.Errorf("the affinity sets do not have the new timeout:\n%s", listed)
	}

	// The affinity service goes: its chains are flushed now and deleted once a
	// second has passed; its affinity sets go at once.
	w.tracker.OnServiceDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "affinity"}})
	if _, err := p.SyncDetailed(ctx, w.tracker.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p.AppliedElements(), elementsIn(t, viaNFT)); diff != "" {
		t.Errorf("mirror differs from the kernel after a removal (-mirror +kernel):\n%s", diff)
	}
	stale := p.StaleChains()
	if len(stale) != 3 { // service-, and two endpoint- chains
		t.Fatalf("stale chains %v, want the affinity service's 3", stale)
	}
	listed := nftIn(t, ns, "list", "table", string(cfg.NFTFamily()), nftables.TableName)
	if !strings.Contains(listed, "chain "+stale[0]) || strings.Contains(listed, "set affinity-") {
		t.Errorf("after removal, want the chains flushed but present and the affinity sets gone:\n%s", listed)
	}
	clock = clock.Add(nftables.StaleChainDelay)
	w.slice("single", v1.ProtocolTCP, 4, 17)
	res, err = p.SyncDetailed(ctx, w.tracker.Snapshot())
	if err != nil || res.DeletedChains != 3 {
		t.Fatalf("sync a second later: deleted %d chains, %v", res.DeletedChains, err)
	}
	listed = nftIn(t, ns, "list", "table", string(cfg.NFTFamily()), nftables.TableName)
	if strings.Contains(listed, "ns/affinity/") {
		t.Errorf("the affinity service's chains are still listed:\n%s", listed)
	}

	// A new Proxier (a restart, or Switchyard replacing kube-proxy) takes the table
	// over with a full sync that recreates the base chains.
	p2, err := nftables.NewProxier(cfg, nft, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	before := listed
	if res, err := p2.SyncDetailed(ctx, w.tracker.Snapshot()); err != nil || !res.Full {
		t.Fatalf("takeover: %v\n%s", err, res.Transaction)
	}
	if after := nftIn(t, ns, "list", "table", string(cfg.NFTFamily()), nftables.TableName); normalize(after) != normalize(before) {
		t.Errorf("takeover changed the table:\n--- before\n%s\n--- after\n%s", before, after)
	}

	// The table disappears (nft flush ruleset): the canary says so, a full sync
	// restores it.
	nftIn(t, ns, "delete", "table", string(cfg.NFTFamily()), nftables.TableName)
	if ok, err := p2.CheckKernel(ctx); ok || err != nil {
		t.Fatalf("canary after the table was deleted: %v, %v", ok, err)
	}
	p2.RequestFullSync("canary")
	if _, err := p2.SyncDetailed(ctx, w.tracker.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p2.CheckKernel(ctx); !ok {
		t.Fatal("canary missing after the full sync")
	}
	if err := nftables.Cleanup(ctx, nft); err != nil {
		t.Fatal(err)
	}
	for _, k := range []nftables.Kernel{nft, viaNFT} {
		if _, err := k.List(ctx, "chain"); !nftables.IsNotFound(err) {
			t.Errorf("table still there after cleanup: %v", err)
		}
		if _, err := k.ListElements(ctx, "map", "service-ips"); !nftables.IsNotFound(err) {
			t.Errorf("service-ips still there after cleanup: %v", err)
		}
	}
}

// normalize returns a table listing with its top-level objects (chains, sets, maps)
// sorted by their text: nft lists them in creation order, which a takeover changes
// for the base chains it recreates, while what each object holds must stay the same.
func normalize(listing string) string {
	var blocks []string
	var cur []string
	for _, line := range strings.Split(listing, "\n") {
		switch {
		case strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "\t\t") && strings.HasSuffix(line, "{"):
			cur = []string{line}
		case line == "\t}":
			blocks = append(blocks, strings.Join(append(cur, line), "\n"))
			cur = nil
		case cur != nil:
			cur = append(cur, line)
		}
	}
	slices.Sort(blocks)
	return strings.Join(blocks, "\n")
}
