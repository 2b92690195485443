package rulediff_test

// IP plan: node "node1" at 192.168.0.2, pods 10.0.0.0/8 (this node's 10.180.0.0/24),
// services 172.30.0.0/16.

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/rulediff"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

const testNode = "node1"

func testConfig() *iptables.Config {
	return &iptables.Config{FamilyConfig: node.FamilyConfig{
		Family:  v1.IPv4Protocol,
		Node:    endpoints.NodeTopology{Name: testNode},
		NodeIPs: []netip.Addr{netip.MustParseAddr("192.168.0.2")},
		Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("10.0.0.0/8")),
	}}
}

// service returns a NodePort Service with one TCP port 80 -> 8080 and its slice.
func service(name, clusterIP string, nodePort int32, endpointIPs ...string) []any {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeNodePort, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []v1.ServicePort{{Name: "p80", Port: 80, NodePort: nodePort, Protocol: v1.ProtocolTCP}},
		},
	}
	slice := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name + "-1", Labels: map[string]string{discovery.LabelServiceName: name}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To[int32](8080), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, ip := range endpointIPs {
		slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{
			Addresses: []string{ip}, NodeName: ptr.To(testNode),
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		})
	}
	return []any{svc, slice}
}

func feed(t *testing.T, tracker *endpoints.Tracker, objects ...any) {
	t.Helper()
	for _, obj := range objects {
		var err error
		switch o := obj.(type) {
		case *v1.Service:
			err = tracker.OnServiceUpdate(o)
		case *discovery.EndpointSlice:
			err = tracker.OnEndpointSliceUpdate(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// compare does what dry-run --diff does against the fake: read the tables, render a
// full sync for them and diff. It returns the diffs that are not empty, by table.
func compare(t *testing.T, fake *xtablestest.Fake, snap *endpoints.Snapshot, cfg *iptables.Config) map[string]string {
	t.Helper()
	ctx := context.Background()
	var kernel []byte
	for _, table := range []xtables.Table{xtables.TableFilter, xtables.TableNAT, xtables.TableMangle} {
		saved, err := fake.SaveTable(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		kernel = append(kernel, saved...)
	}
	natChains, err := fake.ChainNames(ctx, xtables.TableNAT)
	if err != nil {
		t.Fatal(err)
	}
	var canaries []string
	for _, table := range xtables.CanaryTables() {
		canaries = append(canaries, string(table)+"/"+string(xtables.ChainCanary))
	}
	diffs, err := rulediff.Compare(rulediff.Input{
		Family: ruleset.IPv4, Kernel: kernel, Payload: iptables.Render(snap, cfg, natChains).Payload,
		Hooks: iptables.Hooks(cfg), EnsureChains: canaries, Owned: iptables.IsOwnedChain, Shared: iptables.SharedChains(),
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range diffs {
		if d.Diff != "" {
			out[d.Table] = d.Diff
		}
	}
	return out
}

// synced returns a fake kernel that a Proxier has synced with the services given,
// added one per sync so that every sync after the first is partial, and the
// snapshot it last applied.
func synced(t *testing.T, services ...[]any) (*xtablestest.Fake, *endpoints.Snapshot) {
	t.Helper()
	fake := xtablestest.NewFake(ruleset.IPv4)
	p, err := iptables.NewProxier(testConfig(), fake, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tracker := endpoints.NewTracker(testNode)
	var snap *endpoints.Snapshot
	for i, objs := range services {
		feed(t, tracker, objs...)
		snap = tracker.Snapshot()
		res, err := p.Sync(context.Background(), snap)
		if err != nil {
			t.Fatal(err)
		}
		if res.Full != (i == 0) {
			t.Fatalf("sync %d: full=%v (%s)", i, res.Full, res.Reason)
		}
	}
	return fake, snap
}

var (
	web = service("web", "172.30.0.10", 30010, "10.180.0.1", "10.180.0.2")
	api = service("api", "172.30.0.11", 30011, "10.180.0.3")
	db  = service("db", "172.30.0.12", 30012, "10.180.0.4")
)

func TestCompareInSync(t *testing.T) {
	t.Run("after a full sync", func(t *testing.T) {
		fake, snap := synced(t, append(append(append([]any{}, web...), api...), db...))
		if diffs := compare(t, fake, snap, testConfig()); len(diffs) != 0 {
			t.Errorf("diff right after a full sync:\n%s", cmp.Diff(map[string]string{}, diffs))
		}
	})
	// Partial syncs insert new services at the top of nat KUBE-SERVICES and append
	// them to the other shared chains, where a full render orders them by name: a
	// full sync would reorder them, which changes no packet's path, so it is not a
	// difference. mutation-checked: comparing shared chains in order (no setOrder)
	// fails this subtest with the db and api rules moved in KUBE-SERVICES.
	t.Run("after partial syncs", func(t *testing.T) {
		fake, snap := synced(t, db, api, web)
		if diffs := compare(t, fake, snap, testConfig()); len(diffs) != 0 {
			t.Errorf("diff after partial syncs:\n%s", cmp.Diff(map[string]string{}, diffs))
		}
	})
}

// Each case changes the kernel behind the proxy's back (or the API, for a changed
// endpoint) and names diff lines that must appear, '-' for what the next full sync
// removes and '+' for what it writes.
func TestCompareFindsDifferences(t *testing.T) {
	changedWeb := service("web", "172.30.0.10", 30010, "10.180.0.1", "10.180.0.9")
	for _, tc := range []struct {
		name string
		// tamper edits the kernel with a restore payload (--noflush).
		tamper string
		// objects change the API objects after the sync.
		objects []any
		want    map[string][]string // table -> lines that must be in its diff
	}{{
		name:   "deleted endpoint rule",
		tamper: "*nat\n-D KUBE-SEP-%1 -m comment --comment ns/web:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ\nCOMMIT\n",
		want:   map[string][]string{"nat": {"+-A KUBE-SEP-%1 -s 10.180.0.1/32 -m comment --comment ns/web:p80 -j KUBE-MARK-MASQ"}},
	}, {
		name:   "stale service chain",
		tamper: "*nat\n:KUBE-SVC-STALESTALESTALE1 - [0:0]\n-A KUBE-SVC-STALESTALESTALE1 -j KUBE-MARK-MASQ\nCOMMIT\n",
		want: map[string][]string{"nat": {
			"-:KUBE-SVC-STALESTALESTALE1",
			"--A KUBE-SVC-STALESTALESTALE1 -j KUBE-MARK-MASQ",
		}},
	}, {
		name:    "changed endpoint",
		objects: changedWeb,
		want: map[string][]string{"nat": {
			"-:KUBE-SEP-%2",
			"--A KUBE-SEP-%2 -p tcp -m comment --comment ns/web:p80 -m tcp -j DNAT --to-destination 10.180.0.2:8080",
			"+-A KUBE-SEP-%3 -p tcp -m comment --comment ns/web:p80 -m tcp -j DNAT --to-destination 10.180.0.9:8080",
		}},
	}, {
		name:   "missing hook",
		tamper: "*nat\n-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n",
		want:   map[string][]string{"nat": {`+-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`}},
	}, {
		// mutation-checked: sorting the whole of a shared chain (no tail kept) hides
		// this case.
		name: "node-ports jump no longer last",
		tamper: "*nat\n-D KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS\n" +
			"-I KUBE-SERVICES 1 -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS\nCOMMIT\n",
		want: map[string][]string{"nat": {
			`--A KUBE-SERVICES ! -d 127.0.0.0/8 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
			`+-A KUBE-SERVICES ! -d 127.0.0.0/8 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
		}},
	}, {
		name:   "filter rule changed",
		tamper: "*filter\n-F KUBE-FORWARD\nCOMMIT\n",
		want:   map[string][]string{"filter": {"+-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"}},
	}, {
		name:   "canary gone",
		tamper: "*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n",
		want:   map[string][]string{"mangle": {"+:KUBE-PROXY-CANARY"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			fake, snap := synced(t, append(append([]any{}, web...), api...))
			// %1, %2 and %3 in tamper and want name the chains of web's endpoints
			// 10.180.0.1, .2 and .9.
			names := strings.NewReplacer("%1", endpointChain("10.180.0.1:8080"), "%2", endpointChain("10.180.0.2:8080"), "%3", endpointChain("10.180.0.9:8080"))
			if tc.tamper != "" {
				if err := fake.Restore(context.Background(), []byte(names.Replace(tc.tamper))); err != nil {
					t.Fatalf("tampering: %v", err)
				}
			}
			if tc.objects != nil {
				tracker := endpoints.NewTracker(testNode)
				feed(t, tracker, append(append(append([]any{}, web...), api...), tc.objects...)...)
				snap = tracker.Snapshot()
			}
			diffs := compare(t, fake, snap, testConfig())
			for table, lines := range tc.want {
				if !strings.HasPrefix(diffs[table], "--- kernel ip "+table+"\n+++ switchyard ip "+table+"\n") {
					t.Errorf("the %s diff lacks its headers:\n%s", table, diffs[table])
				}
				for _, line := range lines {
					if line = names.Replace(line); !strings.Contains(diffs[table], line+"\n") {
						t.Errorf("the %s diff lacks %q:\n%s", table, line, diffs[table])
					}
				}
			}
			for table := range diffs {
				if _, ok := tc.want[table]; !ok {
					t.Errorf("unexpected diff of %s:\n%s", table, diffs[table])
				}
			}
		})
	}
}

// endpointChain returns the KUBE-SEP chain name of one of ns/web's endpoints, without
// its prefix.
func endpointChain(addr string) string {
	name := endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "web"}, Port: "p80", Protocol: v1.ProtocolTCP}
	return strings.TrimPrefix(iptables.EndpointChain(name, addr), "KUBE-SEP-")
}
