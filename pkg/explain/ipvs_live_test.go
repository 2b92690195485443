package explain

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstesting "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// TestReadIPVSInputMatchesRender programs the kernel fakes with the real IPVS Proxier,
// reads them back as live explain does, and checks that every packet gets the same
// explanation as offline from the render: what explain reads from a node is what IPVS
// mode wrote there.
// mutation-checked: skipping the kube-ipvs0 addresses in ReadIPVSInput fails
// "unknown port" (the VIP is no longer local, so nothing rejects it); reading real
// servers without their weights fails every delivered case.
func TestReadIPVSInputMatchesRender(t *testing.T) {
	ctx := context.Background()
	snap, cfg := ipvsWorld(false)
	kipvs, links, sets := ipvstesting.NewIPVS(), ipvstesting.NewLinks(ipvsNodeIP), ipvstesting.NewIPSets()
	ipt := xtablestest.NewFake(ruleset.IPv4)
	p, err := ipvs.NewProxier(cfg, ipvs.Kernel{IPVS: kipvs, Links: links, IPSets: sets, IPTables: ipt, Sysctl: ipvstesting.NewSysctl()}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(ctx, snap); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	saved, err := ipt.SaveAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := RulesFromSave(ruleset.IPv4, saved)
	if err != nil {
		t.Fatal(err)
	}
	live, err := ReadIPVSInput(ctx, IPVSKernel{IPVS: kipvs, Links: links, IPSets: sets}, v1.IPv4Protocol, rules, cfg.NodeIPs, snap, cfg.Node.Name)
	if err != nil {
		t.Fatal(err)
	}
	offline, err := IPVSInputFromRender(snap, cfg)
	if err != nil {
		t.Fatal(err)
	}
	packets := map[string]Packet{
		"pod to cluster IP":  {Src: netip.MustParseAddr("10.244.1.9"), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromPod},
		"outside":            {Src: netip.MustParseAddr("192.168.5.5"), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromOutside},
		"hairpin":            {Src: web1.Addr(), Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromPod},
		"node port":          {Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.AddrPortFrom(ipvsNodeIP, 30080), Proto: "tcp", From: FromOutside},
		"local node port":    {Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.AddrPortFrom(ipvsNodeIP, 30081), Proto: "tcp", From: FromOutside},
		"lb allowed":         {Src: netip.MustParseAddr("203.0.113.7"), Dst: netip.MustParseAddrPort("1.2.3.4:80"), Proto: "tcp", From: FromOutside},
		"lb refused":         {Src: netip.MustParseAddr("203.0.113.200"), Dst: netip.MustParseAddrPort("1.2.3.4:80"), Proto: "tcp", From: FromOutside},
		"no endpoints":       {Src: netip.MustParseAddr("10.244.1.9"), Dst: netip.MustParseAddrPort("10.96.0.2:53"), Proto: "udp", From: FromPod},
		"unknown port":       {Src: netip.MustParseAddr("10.244.1.9"), Dst: netip.MustParseAddrPort("10.96.0.1:81"), Proto: "tcp", From: FromPod},
		"node to cluster IP": {Src: ipvsNodeIP, Dst: netip.MustParseAddrPort("10.96.0.1:80"), Proto: "tcp", From: FromNode},
		"not a service":      {Src: netip.MustParseAddr("10.244.1.9"), Dst: web2, Proto: "tcp", From: FromPod},
	}
	for name, pkt := range packets {
		t.Run(name, func(t *testing.T) {
			want, err := ExplainIPVS(offline, pkt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ExplainIPVS(live, pkt)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(asJSON(t, want), asJSON(t, got)); diff != "" {
				t.Errorf("live differs from offline (-offline +live):\n%s", diff)
			}
		})
	}
}

// asJSON renders an explanation as indented JSON, to compare two field by field.
func asJSON(t *testing.T, e *Explanation) string {
	t.Helper()
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
