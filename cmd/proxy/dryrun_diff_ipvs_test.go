package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstest "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// TestDiffFamilyIPVS syncs the bundled examples into IPVS fakes with the daemon's
// Proxier and checks that diffFamilyIPVS finds nothing to change; then edits each
// part of the state behind the Proxier's back and checks the diff names it, while
// another program's virtual server stays out of it. mutation-checked: ignoring
// ownership (listing every kernel virtual server) fails "foreign virtual server";
// dropping the weight-0 draining real servers from the synced side fails "draining
// real server stays"; sorting the companion chains fails "companion rules reordered".
func TestDiffFamilyIPVS(t *testing.T) {
	ctx := context.Background()
	snap, configs := examplesSnapshot(t)
	ic := configs[0]
	if ic.Family != v1.IPv4Protocol {
		t.Fatalf("first family %s, want IPv4", ic.Family)
	}
	cfg := ipvsConfigFrom(ic, ipvs.DefaultScheduler, false)
	st := ipvs.Render(snap, cfg)
	var tcpServer ipvs.DesiredServer
	for _, s := range st.Servers {
		if s.Protocol == v1.ProtocolTCP && len(s.RealServers) > 0 {
			tcpServer = s
			break
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, k ipvsKernel, fakeSets *ipvstest.IPSets)
		want   map[string][]string // section -> lines that must be in its diff
	}{{
		name: "in sync",
	}, {
		name: "missing real server",
		tamper: func(t *testing.T, k ipvsKernel, _ *ipvstest.IPSets) {
			if err := k.table.DeleteRealServer(tcpServer.Key, tcpServer.RealServers[0].Addr); err != nil {
				t.Fatal(err)
			}
		},
		want: map[string][]string{"ipvs": {"+-a -t " + tcpServer.AddrPortString() + " -r " + tcpServer.RealServers[0].Addr.String() + " -m -w 1"}},
	}, {
		name: "draining real server stays",
		tamper: func(t *testing.T, k ipvsKernel, _ *ipvstest.IPSets) {
			if err := k.table.AddRealServer(tcpServer.Key, ipvs.RealServer{Addr: netip.MustParseAddrPort("10.244.9.9:80"), Weight: 0}); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "stale virtual server on kube-ipvs0",
		tamper: func(t *testing.T, k ipvsKernel, _ *ipvstest.IPSets) {
			vs := ipvs.VirtualServer{Key: ipvs.Key{Addr: tcpServer.Addr, Port: 9999, Protocol: v1.ProtocolTCP}, Scheduler: "rr"}
			if err := k.table.AddVirtualServer(vs); err != nil {
				t.Fatal(err)
			}
		},
		want: map[string][]string{"ipvs": {"--A -t " + tcpServer.Addr.String() + ":9999 -s rr"}},
	}, {
		name: "foreign virtual server",
		tamper: func(t *testing.T, k ipvsKernel, _ *ipvstest.IPSets) {
			vs := ipvs.VirtualServer{Key: ipvs.Key{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80, Protocol: v1.ProtocolTCP}, Scheduler: "rr"}
			if err := k.table.AddVirtualServer(vs); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "missing address",
		tamper: func(t *testing.T, k ipvsKernel, _ *ipvstest.IPSets) {
			if err := k.links.DeleteAddress(ipvs.DummyInterface, st.Addresses[0]); err != nil {
				t.Fatal(err)
			}
		},
		want: map[string][]string{"addresses": {"+kube-ipvs0 " + st.Addresses[0].String() + "/32"}},
	}, {
		name: "missing set member",
		tamper: func(t *testing.T, _ ipvsKernel, sets *ipvstest.IPSets) {
			member := st.Sets[ipvs.SetClusterIP][0]
			if err := sets.Restore(ctx, []byte("del KUBE-CLUSTER-IP "+member+"\n")); err != nil {
				t.Fatal(err)
			}
		},
		want: map[string][]string{"ipsets": {"+add KUBE-CLUSTER-IP " + st.Sets[ipvs.SetClusterIP][0]}},
	}, {
		name: "companion rule flushed",
		tamper: func(t *testing.T, k ipvsKernel, _ *ipvstest.IPSets) {
			if err := k.iptables.(*xtablestest.Fake).Restore(ctx, []byte("*nat\n-F KUBE-POSTROUTING\nCOMMIT\n")); err != nil {
				t.Fatal(err)
			}
		},
		want: map[string][]string{"nat": {"+-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"}},
	}, {
		// In IPVS mode KUBE-SERVICES is written whole and its order matters.
		// mutation-checked: comparing the companion chains as iptables mode's shared
		// chains (sorted) hides this.
		name: "companion rules reordered",
		tamper: func(t *testing.T, k ipvsKernel, _ *ipvstest.IPSets) {
			move := "*nat\n-D KUBE-SERVICES -s 127.0.0.0/8 -j RETURN\n-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN\nCOMMIT\n"
			if err := k.iptables.(*xtablestest.Fake).Restore(ctx, []byte(move)); err != nil {
				t.Fatal(err)
			}
		},
		want: map[string][]string{"nat": {"+-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN", "--A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			k, sets := syncedIPVS(t, cfg, snap)
			if tc.tamper != nil {
				tc.tamper(t, k, sets)
			}
			diffs, err := diffFamilyIPVS(ctx, k, cfg, snap)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, d := range diffs {
				if d.Diff != "" {
					got[d.Table] = d.Diff
				}
			}
			for section, lines := range tc.want {
				for _, line := range lines {
					if !strings.Contains(got[section], "\n"+line+"\n") {
						t.Errorf("the %s diff lacks %q:\n%s", section, line, got[section])
					}
				}
			}
			for section, diff := range got {
				if _, ok := tc.want[section]; !ok {
					t.Errorf("unexpected %s diff:\n%s", section, diff)
				}
			}
		})
	}
}

// syncedIPVS returns IPVS fakes that the daemon's IPVS Proxier has synced with snap.
func syncedIPVS(t *testing.T, cfg *ipvs.Config, snap *endpoints.Snapshot) (ipvsKernel, *ipvstest.IPSets) {
	t.Helper()
	table, links, sets := ipvstest.NewIPVS(), ipvstest.NewLinks(cfg.NodeIPs...), ipvstest.NewIPSets()
	ipt := xtablestest.NewFake(rulesetFamily(cfg.Family))
	p, err := ipvs.NewProxier(cfg, ipvs.Kernel{IPVS: table, Links: links, IPSets: sets, IPTables: ipt, Sysctl: ipvstest.NewSysctl()}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return ipvsKernel{table: table, links: links, sets: sets, iptables: ipt}, sets
}
