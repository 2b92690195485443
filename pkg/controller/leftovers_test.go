package controller

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstest "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// IP plan: service 10.96.0.10:80 (and fd00:96::10) on kube-ipvs0, endpoint
// 10.244.1.5; a foreign IPVS virtual server on 192.0.2.1:80.

// iptablesLeftovers is what kube-proxy in iptables mode leaves in one family: its
// chains, the jumps from the built-in chains, kubelet's KUBE-FIREWALL and a foreign
// chain, which must all stay but the proxy's.
func iptablesLeftovers(family v1.IPFamily) string {
	vip, ep := "10.96.0.10/32", "10.244.1.5"
	if family == v1.IPv6Protocol {
		vip, ep = "fd00:96::10/128", "fd00:244::5"
	}
	return "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		":KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n:CNI-HOSTPORT - [0:0]\n" +
		"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n" +
		"-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n" +
		"-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n" +
		"-A PREROUTING -j CNI-HOSTPORT\n" +
		"-A KUBE-SERVICES -d " + vip + " -p tcp -m tcp --dport 80 -j KUBE-SVC-AAAAAAAAAAAAAAAA\n" +
		"-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-BBBBBBBBBBBBBBBB\n" +
		"-A KUBE-SEP-BBBBBBBBBBBBBBBB -p tcp -m tcp -j DNAT --to-destination " + netip.AddrPortFrom(netip.MustParseAddr(ep), 80).String() + "\n" +
		"-A KUBE-POSTROUTING -j MASQUERADE\nCOMMIT\n" +
		"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		":KUBE-FORWARD - [0:0]\n:KUBE-FIREWALL - [0:0]\n" +
		"-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n" +
		"-A INPUT -j KUBE-FIREWALL\nCOMMIT\n"
}

// leftoverWorld is a node after kube-proxy ran in every mode: iptables leftovers in
// both backends and families, IPVS's virtual server, dummy interface and ipset, and
// nftables mode's tables, next to other programs' objects that must stay.
type leftoverWorld struct {
	ipt      map[string]*xtablestest.Fake // "IPv4 nft"
	ipvs     *ipvstest.IPVS
	links    *ipvstest.Links
	ipsets   *ipvstest.IPSets
	nft      map[v1.IPFamily]*knftables.Fake
	ipvsVS   ipvs.Key
	foreigVS ipvs.Key
}

func newLeftoverWorld(t *testing.T) *leftoverWorld {
	t.Helper()
	ctx := t.Context()
	w := &leftoverWorld{
		ipt:      map[string]*xtablestest.Fake{},
		ipvs:     ipvstest.NewIPVS(),
		links:    ipvstest.NewLinks(),
		ipsets:   ipvstest.NewIPSets(),
		nft:      map[v1.IPFamily]*knftables.Fake{},
		ipvsVS:   ipvs.Key{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: v1.ProtocolTCP},
		foreigVS: ipvs.Key{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80, Protocol: v1.ProtocolTCP},
	}
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		for family, rf := range map[v1.IPFamily]ruleset.Family{v1.IPv4Protocol: ruleset.IPv4, v1.IPv6Protocol: ruleset.IPv6} {
			fake := xtablestest.NewFake(rf)
			if err := fake.Restore(ctx, []byte(iptablesLeftovers(family))); err != nil {
				t.Fatalf("%s %s: %v", family, backend, err)
			}
			w.ipt[string(family)+" "+string(backend)] = fake
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.links.EnsureDummy(ipvs.DummyInterface))
	must(w.links.AddAddress(ipvs.DummyInterface, w.ipvsVS.Addr))
	must(w.ipvs.AddVirtualServer(ipvs.VirtualServer{Key: w.ipvsVS, Scheduler: "rr"}))
	must(w.ipvs.AddVirtualServer(ipvs.VirtualServer{Key: w.foreigVS, Scheduler: "rr"}))
	must(w.ipsets.Restore(ctx, []byte("create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\ncreate FOREIGN hash:ip family inet hashsize 1024 maxelem 65536\n")))
	for family, nf := range map[v1.IPFamily]knftables.Family{v1.IPv4Protocol: knftables.IPv4Family, v1.IPv6Protocol: knftables.IPv6Family} {
		fake := knftables.NewFake(nf, nftables.TableName)
		tx := fake.NewTransaction()
		tx.Add(&knftables.Table{})
		tx.Add(&knftables.Chain{Name: "services"})
		must(fake.Run(ctx, tx))
		w.nft[family] = fake
	}
	return w
}

// kernel opens the world's fakes as the daemon opens the host's.
func (w *leftoverWorld) kernel() *leftoverKernel {
	return &leftoverKernel{
		iptables: func(_ context.Context, family v1.IPFamily, backend xtables.Backend) (iptables.CleanupKernel, error) {
			return w.ipt[string(family)+" "+string(backend)], nil
		},
		ipvs: func(_ context.Context, family v1.IPFamily) (*ipvs.Kernel, error) {
			return &ipvs.Kernel{IPVS: w.ipvs, Links: w.links, IPSets: w.ipsets, IPTables: w.ipt[string(family)+" nft"], Sysctl: ipvstest.NewSysctl()}, nil
		},
		nftables: func(_ context.Context, family v1.IPFamily) (nftables.Kernel, error) { return w.nft[family], nil },
	}
}

// leftState says which mode's objects are still there, and lists the foreign
// objects that are.
type leftState struct {
	IPTables map[string]bool // "IPv4 nft" → KUBE-SERVICES or its PREROUTING jump present
	IPVS     bool            // the service's virtual server, kube-ipvs0 or KUBE-CLUSTER-IP
	NFTables map[v1.IPFamily]bool
	Foreign  []string
}

func (w *leftoverWorld) state(t *testing.T) leftState {
	t.Helper()
	ctx := t.Context()
	st := leftState{IPTables: map[string]bool{}, NFTables: map[v1.IPFamily]bool{}}
	for name, fake := range w.ipt {
		save, err := fake.SaveAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		text := string(save)
		st.IPTables[name] = strings.Contains(text, ":KUBE-SERVICES") || strings.Contains(text, "-j KUBE-SERVICES") ||
			strings.Contains(text, "KUBE-SEP-") || strings.Contains(text, ":KUBE-FORWARD")
		for _, foreign := range []string{"-A PREROUTING -j CNI-HOSTPORT", ":KUBE-FIREWALL", "-A INPUT -j KUBE-FIREWALL"} {
			if strings.Contains(text, foreign) {
				st.Foreign = append(st.Foreign, name+" "+foreign)
			}
		}
	}
	servers, err := w.ipvs.VirtualServers()
	if err != nil {
		t.Fatal(err)
	}
	for _, vs := range servers {
		if vs.Key == w.ipvsVS {
			st.IPVS = true
		} else {
			st.Foreign = append(st.Foreign, "virtual server "+vs.Key.String())
		}
	}
	st.IPVS = st.IPVS || w.links.Exists(ipvs.DummyInterface) || slices.Contains(w.ipsets.Names(), "KUBE-CLUSTER-IP")
	for _, name := range w.ipsets.Names() {
		if !strings.HasPrefix(name, "KUBE-") {
			st.Foreign = append(st.Foreign, "ipset "+name)
		}
	}
	for family, fake := range w.nft {
		_, err := fake.List(ctx, "chain")
		st.NFTables[family] = err == nil
	}
	slices.Sort(st.Foreign)
	return st
}

// TestCleanupLeftoversPerMode starts the daemon's leftover cleanup in each mode on a
// node holding every mode's rules (strict fakes), and checks that it removes exactly
// what kube-proxy v1.37's platformCleanup removes for that mode, never the rules of
// the mode about to be programmed, and nothing that is not a proxy's.
//
// mutation-checked: returning {"ipvs"} only for nftables in leftoverModes fails
// "nftables" (iptables left); adding "iptables" to the iptables and IPVS modes' list
// fails "iptables" and "ipvs"; cleaning only the nft backend in cleanIPTables fails
// "nftables" (legacy left); making IsOwnedChain own KUBE-FIREWALL fails every mode
// that cleans iptables (foreign chain removed); not calling cleanIPVS fails
// "nftables" (virtual server, kube-ipvs0 and ipset left).
func TestCleanupLeftoversPerMode(t *testing.T) {
	everyIPTables := func(present bool) map[string]bool {
		return map[string]bool{"IPv4 nft": present, "IPv6 nft": present, "IPv4 legacy": present, "IPv6 legacy": present}
	}
	foreign := []string{}
	for _, name := range []string{"IPv4 legacy", "IPv4 nft", "IPv6 legacy", "IPv6 nft"} {
		for _, f := range []string{"-A PREROUTING -j CNI-HOSTPORT", ":KUBE-FIREWALL", "-A INPUT -j KUBE-FIREWALL"} {
			foreign = append(foreign, name+" "+f)
		}
	}
	foreign = append(foreign, "ipset FOREIGN", "virtual server TCP/192.0.2.1:80")
	slices.Sort(foreign)
	for _, tc := range []struct {
		mode string
		want leftState
	}{
		{"nftables", leftState{IPTables: everyIPTables(false), IPVS: false,
			NFTables: map[v1.IPFamily]bool{v1.IPv4Protocol: true, v1.IPv6Protocol: true}, Foreign: foreign}},
		{"iptables", leftState{IPTables: everyIPTables(true), IPVS: true,
			NFTables: map[v1.IPFamily]bool{v1.IPv4Protocol: false, v1.IPv6Protocol: false}, Foreign: foreign}},
		{"ipvs", leftState{IPTables: everyIPTables(true), IPVS: true,
			NFTables: map[v1.IPFamily]bool{v1.IPv4Protocol: false, v1.IPv6Protocol: false}, Foreign: foreign}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			w := newLeftoverWorld(t)
			c := &Controller{cfg: Config{Mode: tc.mode}, leftovers: w.kernel()}
			c.cleanupLeftovers(t.Context())
			if diff := cmp.Diff(tc.want, w.state(t)); diff != "" {
				t.Errorf("after the start-up cleanup in %s mode (-want +got):\n%s", tc.mode, diff)
			}
			// A second start finds nothing more to do and changes nothing.
			before := w.state(t)
			c.cleanupLeftovers(t.Context())
			if diff := cmp.Diff(before, w.state(t)); diff != "" {
				t.Errorf("second start changed (-first +second):\n%s", diff)
			}
		})
	}
}

// TestCleanupLeftoversSkippedInTests checks that a Controller built by newController
// (every test's) never opens the host's kernel for the cleanup: only New sets it.
func TestCleanupLeftoversSkippedInTests(t *testing.T) {
	c := newController(Defaults(), "node1", nil)
	if c.leftovers != nil {
		t.Fatal("newController set the real leftover kernel; tests would clean the host")
	}
}
