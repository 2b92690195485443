package controller

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	conntracktest "github.com/switchyard-io/switchyard/pkg/conntrack/testing"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// recordingNFT is a knftables.Fake whose transactions are logged for scenario tests,
// and whose next Run calls can be made to fail (fail-nft).
type recordingNFT struct {
	*knftables.Fake
	log *opLog

	mu       sync.Mutex
	failures int
}

func newRecordingNFT(log *opLog) *recordingNFT {
	return &recordingNFT{Fake: knftables.NewFake(knftables.IPv4Family, "kube-proxy"), log: log}
}

// Run logs and applies tx, or fails without applying it when a failure is pending.
func (r *recordingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	r.log.add("nft -f:\n" + strings.TrimRight(tx.String(), "\n"))
	r.mu.Lock()
	fail := r.failures > 0
	if fail {
		r.failures--
	}
	r.mu.Unlock()
	if fail {
		return errInjected
	}
	return r.Fake.Run(ctx, tx)
}

// failNext makes the next n Run calls fail.
func (r *recordingNFT) failNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures += n
}

// deleteTable removes the table without logging, as `nft flush ruleset` would.
func (r *recordingNFT) deleteTable(ctx context.Context) error {
	tx := r.Fake.NewTransaction()
	tx.Delete(&knftables.Table{})
	return r.Fake.Run(ctx, tx)
}

// TestNFTablesModeDaemon runs the whole daemon (informers, runner, health, conntrack
// cleanup) in nftables mode over a fake kernel: the table gets the UDP service, /healthz
// turns healthy, and when an endpoint goes the stale UDP flow to it is deleted and the
// other kept, as in iptables mode (the controller does it for every mode).
func TestNFTablesModeDaemon(t *testing.T) {
	cfg := Defaults()
	cfg.Mode = "nftables"
	cfg.MinSyncPeriod = 10 * time.Millisecond
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	cfg.CanaryInterval = 50 * time.Millisecond
	client := fake.NewClientset()
	h := &harness{t: t, client: client, flows: &conntracktest.Fake{}, done: make(chan error, 1)}
	h.c = newController(cfg, "node1", client)
	nft := newRecordingNFT(&opLog{})
	h.c.nftables.openKernel = func(context.Context, v1.IPFamily) (nftables.Kernel, error) { return nft, nil }
	h.c.newIPTables = func(context.Context, v1.IPFamily) (xtables.Interface, error) {
		t.Error("nftables mode opened iptables")
		return xtablestest.NewFake(ruleset.IPv4), nil
	}
	h.c.conntrack = h.flows
	h.c.kernel = fakeNodeKernel(nil)
	h.c.probeNFAcct = func() (nfacct.Interface, error) { return nil, nfacct.ErrNotSupported }
	for _, obj := range []any{testNode(), testUDPService(), testUDPSlice("10.180.0.1", "10.180.0.2")} {
		h.create(obj)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- h.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Error("controller did not stop within 10s of cancellation")
		}
	})
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; table:\n%s", what, nft.Dump())
			}
		}
	}
	waitFor("the dns service", func() bool { return strings.Contains(nft.Dump(), "10.180.0.2 . 53") })
	waitFor("healthy", func() bool { ok, _ := h.c.health.Healthy(); return ok })

	toGone := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.53:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.1:53")}
	toKept := conntrack.Flow{Protocol: v1.ProtocolUDP, OrigDst: netip.MustParseAddrPort("172.30.0.53:53"), ReplySrc: netip.MustParseAddrPort("10.180.0.2:53")}
	h.flows.Add(toGone, toKept)
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), testUDPSlice("10.180.0.2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the stale flow's deletion", func() bool {
		flows := h.flows.Flows()
		return len(flows) == 1 && flows[0] == toKept
	})
	if dump := nft.Dump(); strings.Contains(dump, "10.180.0.1") {
		t.Errorf("the removed endpoint is still in the table:\n%s", dump)
	}
}
