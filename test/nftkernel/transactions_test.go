package nftkernel

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/endpoints/endpointstest"
	"github.com/switchyard-io/switchyard/pkg/nftables"
)

// IP plan (IPv4 only): node1 192.168.0.2 (families[0]); service i has cluster IP
// 172.30.i/250.i%250+1; its endpoints are 10.(100+n/62500).(n/250%250).(n%250+1), every
// other one on node1; every 10th service is a LoadBalancer with 203.0.(113+i/250%2).
// (i%250+1) and a node port, every 7th has ClientIP affinity.

// bigWorld is n services with 10 endpoints each; drop leaves services out, and shift
// moves the endpoints of every service whose index it returns true for.
func bigWorld(t *testing.T, n int, drop, shift func(i int) bool) *endpoints.Snapshot {
	t.Helper()
	var objects []any
	for i := range n {
		if drop != nil && drop(i) {
			continue
		}
		name := fmt.Sprintf("svc-%d", i)
		objects = append(objects, endpointstest.Service("big", name, fmt.Sprintf("172.30.%d.%d", i/250, i%250+1), func(s *v1.Service) {
			if i%10 == 0 {
				s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeLoadBalancer, int32(30000+i)
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.%d.%d", 113+i/250%2, i%250+1)}}
			}
			if i%7 == 0 {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](600)}}
			}
		}))
		eps := make([]endpointstest.Endpoint, 10)
		for j := range eps {
			k := i*11 + j
			if shift != nil && shift(i) {
				k++
			}
			eps[j] = endpointstest.Endpoint{IP: fmt.Sprintf("10.%d.%d.%d", 100+k/62500, k/250%250, k%250+1), Node: []string{"node1", "node2"}[j%2]}
		}
		objects = append(objects, endpointstest.Slice("big", name, name+"-1", 8080, eps...))
	}
	return endpointstest.Snapshot(t, "node1", objects...)
}

// loadEach runs `nft -f` in ns once per transaction.
func loadEach(t *testing.T, ns string, txs []*knftables.Transaction) {
	t.Helper()
	for i, tx := range txs {
		load := exec.Command("ip", "netns", "exec", ns, realNFT, "-f", "-")
		load.Stdin = bytes.NewReader([]byte(tx.String()))
		if out, err := load.CombinedOutput(); err != nil {
			t.Fatalf("nft -f, transaction %d of %d: %v\n%s", i+1, len(txs), err, out)
		}
	}
}

// TestFullSyncInTransactionsInTheKernel loads a 1000 × 10 full render into real
// kernels, once as one transaction and once in 100-port transactions (one `nft -f`
// each), and compares `nft list table`. Then a Proxier's first full sync over the split
// table, for a world with 150 services fewer and 200 moved (1050 ports: more than
// PortsPerTransaction, so several transactions through nft), leaves the table equal to
// a one-transaction load of that world once its stale chains are deleted, and its
// element mirror equal to the kernel's.
//
// mutation-checked (kernel 6.18): writing every group's element changes in the first
// transaction fails the first load ("No such file or directory": a verdict to a chain
// not yet created); dropping the last group's transaction fails the count of
// transactions.
func TestFullSyncInTransactionsInTheKernel(t *testing.T) {
	requireRoot(t)
	f := families[0]
	cfg := f.config(true)
	before := bigWorld(t, 1000, nil, nil)
	empty := nftables.EmptyKernel()

	after := bigWorld(t, 1200, func(i int) bool { return i < 1000 && i%20 == 3 || i >= 1000 && i%2 == 1 },
		func(i int) bool { return i%5 == 1 })
	freshNS := netnsNFT(t, "tx-fresh")
	fresh := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
	loadEach(t, freshNS, nftables.RenderInTransactions(fresh.NewTransaction, after, cfg, empty, 1<<30).Txs)

	oneNS := netnsNFT(t, "tx-one")
	one := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
	onePlan := nftables.RenderInTransactions(one.NewTransaction, before, cfg, empty, 1<<30)
	loadEach(t, oneNS, onePlan.Txs)
	splitNS := netnsNFT(t, "tx-split")
	split := knftables.NewFake(cfg.NFTFamily(), nftables.TableName)
	splitPlan := nftables.RenderInTransactions(split.NewTransaction, before, cfg, empty, 100)
	if len(onePlan.Txs) != 1 || len(splitPlan.Txs) != 11 {
		t.Fatalf("%d and %d transactions, want 1 and the fixed objects + 10 groups", len(onePlan.Txs), len(splitPlan.Txs))
	}
	loadEach(t, splitNS, splitPlan.Txs)
	if diff := cmp.Diff(canonical(t, nftIn(t, oneNS, "list", "table", "ip", nftables.TableName)),
		canonical(t, nftIn(t, splitNS, "list", "table", "ip", nftables.TableName))); diff != "" {
		t.Fatalf("nft list table after 11 transactions differs from one (-one +split):\n%s", diff)
	}

	p := newKernelProxier(t, splitNS, f, cfg)
	res, err := p.SyncDetailed(t.Context(), after)
	if err != nil || !res.Full {
		t.Fatalf("full sync over the loaded table: full %v, %v", res.Full, err)
	}
	if !strings.Contains(res.Transaction, "# transaction 1 of ") || res.Stats.StaleChains == 0 || res.Stats.ElementsDeleted == 0 {
		t.Errorf("the full sync should be in several transactions, with stale chains and deleted elements: %+v", res.Stats)
	}
	// PATH's nft is splitNS's (netnsNFT, the last call).
	viaNFT, err := knftables.New(knftables.IPv4Family, nftables.TableName)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(elementsIn(t, viaNFT), p.AppliedElements()); diff != "" {
		t.Errorf("element mirror (-kernel +mirror):\n%s", diff)
	}
	time.Sleep(nftables.StaleChainDelay)
	if res, err := p.SyncDetailed(t.Context(), after); err != nil || res.DeletedChains == 0 {
		t.Fatalf("deleting the stale chains: deleted %d, %v", res.DeletedChains, err)
	}

	if diff := cmp.Diff(canonical(t, nftIn(t, freshNS, "list", "table", "ip", nftables.TableName)),
		canonical(t, nftIn(t, splitNS, "list", "table", "ip", nftables.TableName))); diff != "" {
		t.Errorf("after the Proxier's full sync (-fresh +synced):\n%s", diff)
	}
}
