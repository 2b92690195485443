package nftables

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// localhostGate is kube-proxy's alpha gate for localhost node ports in nftables mode.
const localhostGate = "KubeProxyNFTablesLocalhostNodePorts"

// TestNFTablesLocalhostNodePortsTwin runs the pinned kube-proxy v1.37.2 on node-1 with
// its alpha gate KubeProxyNFTablesLocalhostNodePorts on, and Switchyard with the same
// gate as its twin (--hostname-override node-1), and compares their tables whole,
// counters included: once with the default node-port addresses (kube-proxy rejects
// and counts tcp, udp and sctp node ports on 127.0.0.0/8 and ::1), once with
// "localhost" among them (kube-proxy then serves TCP there with its userspace proxy
// and rejects only udp and sctp; Switchyard writes the same table without the proxy).
// TestNFTablesSwitchyard covers the gate off, kube-proxy's default.
//
// Between the two, kube-proxy restarted with "localhost" over the table it left with
// the first setting cannot sync: it deletes the tcp reject chain before the map
// elements that go to it, and the kernel refuses ("Device or resource busy"). The
// test records that, then starts it over an empty table. Switchyard deletes those
// elements first (test/nftkernel's TestLocalhostNodePortsInTheKernel).
//
// mutation-checked: writing the reject element for every protocol in the
// explicit-loopback case (LocalhostNodePortRejects ignoring explicitLoopback) fails
// "localhost in nodePortAddresses" with the tcp elements, chain and counter extra.
func TestNFTablesLocalhostNodePortsTwin(t *testing.T) {
	testbed.Require(t)
	ctx := t.Context()
	w := startWorld(t)
	defaultAddrs := "featureGates:\n  " + localhostGate + ": true\n"
	withLocalhost := defaultAddrs + "nodePortAddresses: [primary, localhost]\n"
	deleteTables := func(t *testing.T) {
		for _, family := range []string{"ip", "ip6"} {
			if out, err := w.node1.Exec(ctx, "nft", "delete", "table", family, "kube-proxy"); err != nil {
				t.Fatalf("nft delete table %s kube-proxy: %v: %s", family, err, out)
			}
		}
	}
	twin := func(t *testing.T, name string, extra ...string) {
		node := w.cluster.AddNode(t, name, nil)
		s := w.cluster.AddSwitchyard(t, node, testbed.SwitchyardOptions{Kubeconfig: w.cluster.KubeProxyKubeconfig,
			MinSyncPeriod: time.Second,
			ExtraArgs:     append([]string{"--proxy-mode", "nftables", "--hostname-override", w.node1.Name, "--feature-gates", localhostGate + "=true"}, extra...)})
		defer func() {
			if err := s.Process.Stop(); err != nil {
				t.Error(err)
			}
		}()
		compareTablesEventually(ctx, t, true, "kube-proxy on node-1", tablesOf(ctx, t, w.node1),
			"switchyard on "+name+" as node-1", tablesOf(ctx, t, node))
	}

	kubeProxy := w.cluster.AddKubeProxyWithConfig(t, w.node1, "nftables", defaultAddrs)
	t.Run("default node-port addresses", func(t *testing.T) {
		reference := nftDumps(ctx, t, w.node1)
		for _, s := range []string{"counter localhost-nodeport-rejected-tcp", "counter localhost-nodeport-rejected-udp",
			"tcp . 30080 : goto localhost-nodeport-reject-tcp", "ip6 daddr ::1 meta l4proto . th dport vmap @localhost-nodeport-reject-ports"} {
			if !strings.Contains(reference, s) {
				t.Errorf("kube-proxy's tables lack %q:\n%s", s, reference)
			}
		}
		twin(t, "node-3")
	})
	if err := kubeProxy.Process.Stop(); err != nil {
		t.Fatal(err)
	}

	kubeProxy = w.cluster.AddKubeProxyWithConfig(t, w.node1, "nftables", withLocalhost)
	t.Run("kube-proxy cannot drop the tcp rejects it left", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(kubeProxy.Process.Tail(200), "Device or resource busy") {
			if time.Now().After(deadline) {
				t.Fatalf("no failed sync in kube-proxy's log:\n%s", kubeProxy.Process.Tail(40))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if reference := nftDumps(ctx, t, w.node1); !strings.Contains(reference, "localhost-nodeport-rejected-tcp") {
			t.Errorf("the tcp rejects are gone:\n%s", reference)
		}
	})
	if err := kubeProxy.Process.Stop(); err != nil {
		t.Fatal(err)
	}

	deleteTables(t)
	kubeProxy = w.cluster.AddKubeProxyWithConfig(t, w.node1, "nftables", withLocalhost)
	defer func() {
		if err := kubeProxy.Process.Stop(); err != nil {
			t.Error(err)
		}
	}()
	t.Run("localhost in nodePortAddresses", func(t *testing.T) {
		reference := nftDumps(ctx, t, w.node1)
		if !strings.Contains(reference, "counter localhost-nodeport-rejected-udp") || strings.Contains(reference, "localhost-nodeport-rejected-tcp") {
			t.Errorf("want udp and sctp rejects, no tcp ones, in kube-proxy's tables:\n%s", reference)
		}
		twin(t, "node-4", "--nodeport-addresses", "primary,localhost")
	})
}
