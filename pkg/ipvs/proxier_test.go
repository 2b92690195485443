package ipvs_test

// IP plan: node "node-a" 192.168.0.10; pods 10.244.1.x (node-a) and 10.244.2.x
// (node-b); cluster IPs 10.96.0.x; a foreign IPVS service at 10.0.0.99:80.

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstesting "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

var nodeIP = netip.MustParseAddr("192.168.0.10")

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock                { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

type bed struct {
	ipvs   *ipvstesting.IPVS
	links  *ipvstesting.Links
	sets   *ipvstesting.IPSets
	ipt    *xtablestest.Fake
	sysctl *ipvstesting.Sysctl
	clock  *fakeClock
}

func newBed() *bed {
	return &bed{
		ipvs: ipvstesting.NewIPVS(), links: ipvstesting.NewLinks(nodeIP), sets: ipvstesting.NewIPSets(),
		ipt: xtablestest.NewFake(ruleset.IPv4), sysctl: ipvstesting.NewSysctl(), clock: newClock(),
	}
}

func (b *bed) proxier(t *testing.T, mod ...func(*ipvs.Config)) *ipvs.Proxier {
	t.Helper()
	cfg := &ipvs.Config{
		FamilyConfig: node.FamilyConfig{
			Family:  v1.IPv4Protocol,
			Node:    endpoints.NodeTopology{Name: "node-a"},
			NodeIPs: []netip.Addr{nodeIP},
			Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("10.244.0.0/16")),
		},
		GracePeriod: 10 * time.Minute,
	}
	for _, m := range mod {
		m(cfg)
	}
	p, err := ipvs.NewProxier(cfg, ipvs.Kernel{IPVS: b.ipvs, Links: b.links, IPSets: b.sets, IPTables: b.ipt, Sysctl: b.sysctl}, time.Hour, b.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func name(svc, port string, proto v1.Protocol) endpoints.ServicePortName {
	return endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: svc}, Port: port, Protocol: proto}
}

func port(svc, clusterIP string, mod ...func(*endpoints.ServicePort)) *endpoints.ServicePort {
	p := &endpoints.ServicePort{Name: name(svc, "p", v1.ProtocolTCP), Port: 80, ClusterIPs: []netip.Addr{netip.MustParseAddr(clusterIP)}}
	for _, m := range mod {
		m(p)
	}
	return p
}

func ep(ip string) *endpoints.Endpoint {
	return &endpoints.Endpoint{IP: netip.MustParseAddr(ip), Port: 8080, NodeName: "node-b", Ready: true, Serving: true}
}

// world is a mutable model of the cluster that yields consecutive snapshots.
type world struct {
	gen   uint64
	ports map[endpoints.ServicePortName]*endpoints.ServicePort
	eps   map[endpoints.ServicePortName][]*endpoints.Endpoint
	dirty map[endpoints.ServicePortName]struct{}
}

func newWorld() *world {
	return &world{ports: map[endpoints.ServicePortName]*endpoints.ServicePort{},
		eps: map[endpoints.ServicePortName][]*endpoints.Endpoint{}, dirty: map[endpoints.ServicePortName]struct{}{}}
}

func (w *world) set(p *endpoints.ServicePort, eps ...*endpoints.Endpoint) {
	w.ports[p.Name] = p
	slices.SortFunc(eps, func(a, b *endpoints.Endpoint) int { return a.AddrPort().Compare(b.AddrPort()) })
	w.eps[p.Name] = eps
	w.dirty[p.Name] = struct{}{}
}

func (w *world) remove(n endpoints.ServicePortName) {
	delete(w.ports, n)
	delete(w.eps, n)
	w.dirty[n] = struct{}{}
}

func (w *world) snapshot() *endpoints.Snapshot {
	w.gen++
	s := &endpoints.Snapshot{Services: map[endpoints.ServicePortName]*endpoints.ServicePort{},
		Endpoints: map[endpoints.ServicePortName][]*endpoints.Endpoint{}, Changed: w.dirty, Generation: w.gen}
	for k, v := range w.ports {
		s.Services[k] = v
	}
	for k, v := range w.eps {
		if len(v) > 0 {
			s.Endpoints[k] = v
		}
	}
	w.dirty = map[endpoints.ServicePortName]struct{}{}
	return s
}

func mustSync(t *testing.T, p *ipvs.Proxier, snap *endpoints.Snapshot, wantFull bool) ipvs.SyncResult {
	t.Helper()
	res, err := p.SyncDetailed(context.Background(), snap)
	if err != nil {
		t.Fatalf("sync %d: %v", snap.Generation, err)
	}
	if res.Full != wantFull {
		t.Fatalf("sync %d: full=%v (%s), want %v", snap.Generation, res.Full, res.Reason, wantFull)
	}
	return res
}

func TestFirstSyncProgramsEverything(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	w := newWorld()
	w.set(port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.NodePort = 30080 }), ep("10.244.2.1"), ep("10.244.2.2"))
	w.set(port("empty", "10.96.0.11"))
	mustSync(t, p, w.snapshot(), true)

	want := "-A -t 10.96.0.10:80 -s rr\n" +
		"-a -t 10.96.0.10:80 -r 10.244.2.1:8080 -m -w 1\n" +
		"-a -t 10.96.0.10:80 -r 10.244.2.2:8080 -m -w 1\n" +
		"-A -t 10.96.0.11:80 -s rr\n" +
		"-A -t 192.168.0.10:30080 -s rr\n" +
		"-a -t 192.168.0.10:30080 -r 10.244.2.1:8080 -m -w 1\n" +
		"-a -t 192.168.0.10:30080 -r 10.244.2.2:8080 -m -w 1\n"
	if diff := cmp.Diff(want, b.ipvs.Dump()); diff != "" {
		t.Errorf("IPVS table (-want +got):\n%s", diff)
	}
	addrs, _ := b.links.Addresses(ipvs.DummyInterface)
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("10.96.0.11")}, addrs, cmpAddr); diff != "" {
		t.Errorf("kube-ipvs0 addresses (-want +got):\n%s", diff)
	}
	if got, _ := b.sets.Entries(context.Background(), "KUBE-NODE-PORT-TCP"); !slices.Equal(got, []string{"30080"}) {
		t.Errorf("KUBE-NODE-PORT-TCP = %v", got)
	}
	if slices.ContainsFunc(b.sets.Names(), func(n string) bool { return strings.HasPrefix(n, "SY-TMP") }) {
		t.Errorf("temporary sets left behind: %v", b.sets.Names())
	}
	for _, kv := range [][2]string{{"net/ipv4/vs/conntrack", "1"}, {"net/ipv4/ip_forward", "1"}, {"net/ipv4/vs/expire_nodest_conn", "1"}, {"net/ipv4/conf/all/arp_ignore", "0"}} {
		if got, _ := b.sysctl.Get(kv[0]); got != kv[1] {
			t.Errorf("sysctl %s = %s, want %s", kv[0], got, kv[1])
		}
	}
	saved, _ := b.ipt.SaveTable(context.Background(), "filter")
	for _, want := range []string{"-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER",
		"-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT"} {
		if !strings.Contains(string(saved), want) {
			t.Errorf("filter table lacks %q:\n%s", want, saved)
		}
	}
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestPartialSyncIsMinimal(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	w := newWorld()
	web := port("web", "10.96.0.10")
	w.set(web, ep("10.244.2.1"))
	for i := range 50 {
		w.set(port("other"+string(rune('a'+i%26))+string(rune('a'+i/26)), netip.AddrFrom4([4]byte{10, 96, 1, byte(i)}).String()), ep("10.244.2.9"))
	}
	mustSync(t, p, w.snapshot(), true)

	steps := []struct {
		name    string
		change  func()
		wantOps []string
	}{
		{"add an endpoint", func() { w.set(web, ep("10.244.2.1"), ep("10.244.2.2")) },
			[]string{"add-rs TCP/10.96.0.10:80 10.244.2.2:8080 w1"}},
		{"remove an endpoint: drained, not deleted", func() { w.set(web, ep("10.244.2.2")) },
			[]string{"update-rs TCP/10.96.0.10:80 10.244.2.1:8080 w0"}},
		{"it comes back: weight restored at once", func() { w.set(web, ep("10.244.2.1"), ep("10.244.2.2")) },
			[]string{"update-rs TCP/10.96.0.10:80 10.244.2.1:8080 w1"}},
		{"affinity turned on", func() {
			w.set(port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.AffinityTimeoutSeconds = 30 }), ep("10.244.2.1"), ep("10.244.2.2"))
		}, []string{"update-vs TCP/10.96.0.10:80 rr persistent 30"}},
		{"service deleted", func() { w.remove(web.Name) },
			[]string{"del-vs TCP/10.96.0.10:80"}},
		{"nothing changed", func() {}, nil},
	}
	for _, step := range steps {
		b.ipvs.ResetOps()
		step.change()
		mustSync(t, p, w.snapshot(), false)
		if diff := cmp.Diff(step.wantOps, b.ipvs.Ops()); diff != "" {
			t.Errorf("%s: IPVS operations (-want +got):\n%s", step.name, diff)
		}
	}
	addrs, _ := b.links.Addresses(ipvs.DummyInterface)
	if slices.Contains(addrs, netip.MustParseAddr("10.96.0.10")) {
		t.Errorf("the deleted service's VIP is still bound")
	}
	if got, _ := b.sets.Entries(context.Background(), "KUBE-CLUSTER-IP"); slices.Contains(got, "10.96.0.10,tcp:80") || len(got) != 50 {
		t.Errorf("KUBE-CLUSTER-IP = %d members, with the deleted one: %v", len(got), slices.Contains(got, "10.96.0.10,tcp:80"))
	}
}

func TestSharedVIPStaysWhileOnePortNeedsIt(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	w := newWorld()
	http := port("web", "10.96.0.10")
	https := port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.Name.Port, sp.Port = "https", 443 })
	w.set(http, ep("10.244.2.1"))
	w.set(https, ep("10.244.2.1"))
	mustSync(t, p, w.snapshot(), true)
	w.remove(http.Name)
	mustSync(t, p, w.snapshot(), false)
	addrs, _ := b.links.Addresses(ipvs.DummyInterface)
	if !slices.Contains(addrs, netip.MustParseAddr("10.96.0.10")) {
		t.Errorf("10.96.0.10 unbound although :443 still uses it")
	}
	w.remove(https.Name)
	mustSync(t, p, w.snapshot(), false)
	if addrs, _ := b.links.Addresses(ipvs.DummyInterface); len(addrs) != 0 {
		t.Errorf("addresses left: %v", addrs)
	}
	if b.ipvs.Dump() != "" {
		t.Errorf("virtual servers left:\n%s", b.ipvs.Dump())
	}
}

func TestRestartAdoptsWithoutDisruption(t *testing.T) {
	b := newBed()
	w := newWorld()
	w.set(port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.NodePort = 30080 }), ep("10.244.2.1"), ep("10.244.2.2"))
	w.set(port("gone", "10.96.0.20", func(sp *endpoints.ServicePort) { sp.NodePort = 30090 }), ep("10.244.2.3"))
	mustSync(t, b.proxier(t), w.snapshot(), true)
	// Someone else's virtual server, not on kube-ipvs0.
	foreign := ipvs.VirtualServer{Key: ipvs.Key{Addr: netip.MustParseAddr("10.0.0.99"), Port: 80, Protocol: v1.ProtocolTCP}, Scheduler: "wlc"}
	if err := b.ipvs.AddVirtualServer(foreign); err != nil {
		t.Fatal(err)
	}

	// A new process, and meanwhile "gone" was deleted.
	w.remove(name("gone", "p", v1.ProtocolTCP))
	b.ipvs.ResetOps()
	linkOps := b.links.Ops()
	p := b.proxier(t)
	mustSync(t, p, w.snapshot(), true)
	want := []string{"del-vs TCP/10.96.0.20:80", "del-vs TCP/192.168.0.10:30090"}
	if diff := cmp.Diff(want, b.ipvs.Ops()); diff != "" {
		t.Errorf("restart must only remove what is stale (-want +got):\n%s", diff)
	}
	if got := b.links.Ops() - linkOps; got != 1 {
		t.Errorf("%d link operations, want 1 (unbinding 10.96.0.20)", got)
	}
	if !strings.Contains(b.ipvs.Dump(), "-A -t 10.0.0.99:80 -s wlc") {
		t.Errorf("the foreign virtual server was removed:\n%s", b.ipvs.Dump())
	}

	// Cleanup removes Switchyard's state only.
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("-A -t 10.0.0.99:80 -s wlc\n", b.ipvs.Dump()); diff != "" {
		t.Errorf("after cleanup (-want +got):\n%s", diff)
	}
	if b.links.Exists(ipvs.DummyInterface) || len(b.sets.Names()) != 0 {
		t.Errorf("cleanup left kube-ipvs0 (%v) or sets %v", b.links.Exists(ipvs.DummyInterface), b.sets.Names())
	}
	if ok, _ := b.ipt.ChainExists(context.Background(), "nat", ipvs.ChainServices); ok {
		t.Errorf("cleanup left nat KUBE-SERVICES")
	}
	if err := p.Cleanup(context.Background()); err != nil {
		t.Errorf("second cleanup: %v", err)
	}
}

func TestRestartAdoptsWeightZeroAndWrongScheduler(t *testing.T) {
	b := newBed()
	w := newWorld()
	web := port("web", "10.96.0.10")
	w.set(web, ep("10.244.2.1"), ep("10.244.2.2"))
	mustSync(t, b.proxier(t), w.snapshot(), true)
	k := ipvs.Key{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: v1.ProtocolTCP}
	// The old process was draining .2 and used lc.
	_ = b.ipvs.UpdateRealServer(k, ipvs.RealServer{Addr: netip.MustParseAddrPort("10.244.2.2:8080"), Weight: 0})
	_ = b.ipvs.UpdateVirtualServer(ipvs.VirtualServer{Key: k, Scheduler: "lc"})
	b.ipvs.ResetOps()
	mustSync(t, b.proxier(t), w.snapshot(), true)
	want := []string{"update-vs TCP/10.96.0.10:80 rr", "update-rs TCP/10.96.0.10:80 10.244.2.2:8080 w1"}
	if diff := cmp.Diff(want, b.ipvs.Ops()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestGracefulTerminationTimeline(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	w := newWorld()
	web := port("web", "10.96.0.10")
	w.set(web, ep("10.244.2.1"), ep("10.244.2.2"), ep("10.244.2.3"))
	mustSync(t, p, w.snapshot(), true)
	k := ipvs.Key{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: v1.ProtocolTCP}
	rs1, rs2 := netip.MustParseAddrPort("10.244.2.1:8080"), netip.MustParseAddrPort("10.244.2.2:8080")
	if err := b.ipvs.SetConnections(k, rs1, 2, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.ipvs.SetConnections(k, rs2, 1, 0); err != nil {
		t.Fatal(err)
	}

	// t=0: .1 and .2 removed.
	w.set(web, ep("10.244.2.3"))
	mustSync(t, p, w.snapshot(), false)
	check := func(when string, wantDeleted []string, wantDraining []string) {
		t.Helper()
		res, err := p.CheckTerminating(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantDeleted, res.Deleted); diff != "" {
			t.Errorf("%s: deleted (-want +got):\n%s", when, diff)
		}
		if diff := cmp.Diff(wantDraining, p.Terminating()); diff != "" {
			t.Errorf("%s: draining (-want +got):\n%s", when, diff)
		}
	}
	check("t=0 with connections", nil, []string{"TCP/10.96.0.10:80 -> 10.244.2.1:8080", "TCP/10.96.0.10:80 -> 10.244.2.2:8080"})

	// t=1m: .1's connections end; it goes. .2 still has one.
	b.clock.step(time.Minute)
	_ = b.ipvs.SetConnections(k, rs1, 0, 0)
	check("t=1m", []string{"TCP/10.96.0.10:80 -> 10.244.2.1:8080"}, []string{"TCP/10.96.0.10:80 -> 10.244.2.2:8080"})

	// A full resync in between keeps the drain time (it does not restart the clock).
	p.RequestFullSync("test")
	mustSync(t, p, w.snapshot(), true)

	// t=10m: the grace period is over: .2 goes despite its connection.
	b.clock.step(9 * time.Minute)
	check("t=10m", []string{"TCP/10.96.0.10:80 -> 10.244.2.2:8080"}, nil)
	if diff := cmp.Diff("-A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.244.2.3:8080 -m -w 1\n", b.ipvs.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestImmediateDeletion(t *testing.T) {
	tests := []struct {
		name  string
		port  *endpoints.ServicePort
		sched string
	}{
		{"UDP", port("dns", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.Name.Protocol = v1.ProtocolUDP }), ""},
		{"SCTP", port("sig", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.Name.Protocol = v1.ProtocolSCTP }), ""},
		{"sh scheduler (kubernetes#121590)", port("web", "10.96.0.10"), "sh"},
		{"mh scheduler", port("web", "10.96.0.10"), "mh"},
		{"sh by annotation", port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.Scheduler = "sh" }), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed()
			p := b.proxier(t, func(c *ipvs.Config) { c.Scheduler = tc.sched })
			w := newWorld()
			w.set(tc.port, ep("10.244.2.1"), ep("10.244.2.2"))
			mustSync(t, p, w.snapshot(), true)
			b.ipvs.ResetOps()
			w.set(tc.port, ep("10.244.2.2"))
			mustSync(t, p, w.snapshot(), false)
			ops := b.ipvs.Ops()
			if len(ops) != 1 || !strings.HasPrefix(ops[0], "del-rs ") {
				t.Errorf("ops = %v, want one del-rs", ops)
			}
			if got := p.Terminating(); len(got) != 0 {
				t.Errorf("draining: %v", got)
			}
		})
	}
}

func TestFailureForcesFullSync(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	w := newWorld()
	web := port("web", "10.96.0.10")
	w.set(web, ep("10.244.2.1"))
	mustSync(t, p, w.snapshot(), true)
	b.ipvs.FailNext("AddRealServer", errors.New("netlink: boom"))
	w.set(web, ep("10.244.2.1"), ep("10.244.2.2"))
	if _, err := p.SyncDetailed(context.Background(), w.snapshot()); err == nil || !strings.Contains(err.Error(), "ns/web:p: netlink: boom") {
		t.Fatalf("err = %v, want the failure named by service", err)
	}
	res := mustSync(t, p, w.snapshot(), true)
	if res.Stats.RealAdded != 1 {
		t.Errorf("the full sync after the failure added %d real servers, want 1", res.Stats.RealAdded)
	}
}

func TestBadAnnotationIsReportedNotFatal(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	w := newWorld()
	w.set(port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.Scheduler = "bogus" }), ep("10.244.2.1"))
	w.set(port("ok", "10.96.0.11"), ep("10.244.2.2"))
	res := mustSync(t, p, w.snapshot(), true)
	if len(res.ServiceErrors) != 1 || !strings.Contains(res.ServiceErrors[0].Error(), "ns/web:p") {
		t.Errorf("service errors = %v", res.ServiceErrors)
	}
	if !strings.Contains(b.ipvs.Dump(), "-A -t 10.96.0.10:80 -s rr") || !strings.Contains(b.ipvs.Dump(), "-A -t 10.96.0.11:80 -s rr") {
		t.Errorf("both services must be programmed:\n%s", b.ipvs.Dump())
	}
}

func TestMissingSchedulerModuleFailsLoudly(t *testing.T) {
	b := newBed()
	b.ipvs.SetSchedulers("rr")
	p := b.proxier(t, func(c *ipvs.Config) { c.Scheduler = "lblc" })
	w := newWorld()
	w.set(port("web", "10.96.0.10"), ep("10.244.2.1"))
	if _, err := p.SyncDetailed(context.Background(), w.snapshot()); err == nil || !strings.Contains(err.Error(), `scheduler "lblc"`) {
		t.Errorf("err = %v", err)
	}
}

// TestCanaryIgnoredBeforeTheFirstSync: as in iptables mode, the canary check finds
// nothing wrong before a sync has applied anything, and finds flushed tables after.
// mutation-checked: removing the Applied() == nil guard in CheckKernel fails the first
// check.
func TestCanaryIgnoredBeforeTheFirstSync(t *testing.T) {
	ctx := context.Background()
	b := newBed()
	p := b.proxier(t)
	if ok, err := p.CheckKernel(ctx); err != nil || !ok {
		t.Fatalf("before the first sync: CheckKernel = %v, %v; want true", ok, err)
	}
	w := newWorld()
	w.set(port("web", "10.96.0.10"), ep("10.244.1.1"))
	mustSync(t, p, w.snapshot(), true)
	if ok, err := p.CheckKernel(ctx); err != nil || !ok {
		t.Fatalf("after the first sync: CheckKernel = %v, %v; want true", ok, err)
	}
	if err := b.ipt.RestoreWithFlags(ctx, []byte("*nat\nCOMMIT\n"), xtablestest.RestoreFlags{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.CheckKernel(ctx); err != nil || ok {
		t.Fatalf("after the nat table was flushed: CheckKernel = %v, %v; want false", ok, err)
	}
}
