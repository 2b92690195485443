package nftkernel

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nftables"
)

// TestRestartLeavesWrittenChainsAlone restarts the Proxier (a new one on the same
// table) over 1,200 service ports, more than one transaction's worth: the service
// ports of the transactions the netlink writer compiled carry their rules' tags, and
// the restart's full sync leaves their chains alone, while it rewrites the group the
// writer left to nft (it holds the affinity and firewall services). The table lists
// the same before and after. Then a rule replaced by hand (`nft replace rule`, which
// carries no tag) makes the next restart rewrite that chain, and only that one.
//
// mutation-checked: a render that ignores the tags (rewriteOf returning nil) fails the
// count of unchanged chains; one that compares only the number of rules leaves the
// hand-replaced rule in place.
func TestRestartLeavesWrittenChainsAlone(t *testing.T) {
	requireRoot(t)
	f := families[0]
	ns := netnsNFT(t, "restart")
	cfg := f.config(false)
	w := &world{t: t, f: f, tracker: endpoints.NewTracker("node1")}
	w.populate()
	const extra = 1200
	for i := range extra {
		name := fmt.Sprintf("svc-%04d", i)
		ip := fmt.Sprintf("172.30.%d.%d", 10+i/250, 1+i%250)
		svc := &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip}, IPFamilies: []v1.IPFamily{v1.IPv4Protocol},
				Ports: []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP}}},
		}
		if err := w.tracker.OnServiceUpdate(svc); err != nil {
			t.Fatal(err)
		}
		s := &discovery.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name + "-1", Labels: map[string]string{discovery.LabelServiceName: name}},
			AddressType: discovery.AddressTypeIPv4,
			Ports:       []discovery.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To[int32](8080), Protocol: ptr.To(v1.ProtocolTCP)}},
		}
		for e := range 3 {
			s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 100+e, i/250, 1+i%250)},
				NodeName: ptr.To("node2"), Conditions: discovery.EndpointConditions{Ready: ptr.To(true)}})
		}
		if err := w.tracker.OnEndpointSliceUpdate(s); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	snap := w.tracker.Snapshot()
	family := string(cfg.NFTFamily())

	p1 := newKernelProxier(t, ns, f, cfg)
	first, err := p1.SyncDetailed(ctx, snap)
	if err != nil || !first.Full {
		t.Fatalf("first sync: full %v, %v", first.Full, err)
	}
	if first.Writer != nftables.WriterNFT+"+"+nftables.WriterNetlink {
		t.Errorf("first sync written by %q, want the setup and the first ports through nft, the rest over netlink", first.Writer)
	}
	if first.Stats.UnchangedChains != 0 {
		t.Errorf("the first sync into an empty table left %d chains alone", first.Stats.UnchangedChains)
	}
	before := nftIn(t, ns, "list", "table", family, nftables.TableName)

	// The ports sort by name (ns/affinity … ns/single, then ns/svc-0000 …): the first
	// transaction of ports holds the affinity and firewall services and went through
	// nft; the second, the ports after the 1000th, was compiled.
	restart := func(what string) nftables.SyncResult {
		t.Helper()
		p := newKernelProxier(t, ns, f, cfg)
		res, err := p.SyncDetailed(ctx, snap)
		if err != nil || !res.Full {
			t.Fatalf("%s: full %v, %v", what, res.Full, err)
		}
		return res
	}
	res := restart("restart")
	ports := len(snap.Services)
	compiled := ports - nftables.PortsPerTransaction // the ports of the second transaction
	if res.Stats.UnchangedChains != compiled {
		t.Errorf("restart: %d chains left alone, want the %d of the compiled transaction (of %d ports)\n%s",
			res.Stats.UnchangedChains, compiled, ports, head(res.Transaction, 40))
	}
	chain := nftables.ServiceChain(endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "svc-1199"}, Port: "p80", Protocol: v1.ProtocolTCP})
	if strings.Contains(res.Transaction, "flush chain ip kube-proxy "+chain+"\n") {
		t.Errorf("restart rewrote %s, of the compiled transaction", chain)
	}
	if after := nftIn(t, ns, "list", "table", family, nftables.TableName); normalize(after) != normalize(before) {
		t.Errorf("restart changed the table")
	}

	// A rule replaced by hand loses its tag: that chain, and only it, is rewritten.
	listed := nftIn(t, ns, "-a", "list", "chain", family, nftables.TableName, chain)
	handle := listed[strings.LastIndex(listed, "# handle ")+len("# handle "):]
	handle = strings.Fields(handle)[0]
	nftIn(t, ns, "replace", "rule", family, nftables.TableName, chain, "handle", handle, "meta l4proto tcp dnat to 10.9.9.9:9")
	res = restart("restart after a hand edit")
	if res.Stats.UnchangedChains != compiled-1 {
		t.Errorf("after a hand edit: %d chains left alone, want %d", res.Stats.UnchangedChains, compiled-1)
	}
	if after := nftIn(t, ns, "list", "chain", family, nftables.TableName, chain); strings.Contains(after, "10.9.9.9") {
		t.Errorf("the hand-edited rule is still there:\n%s", after)
	}
	if !strings.Contains(res.Transaction, "flush chain ip kube-proxy "+chain+"\n") {
		t.Errorf("the hand-edited chain %s was not rewritten", chain)
	}
}

// head returns the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
