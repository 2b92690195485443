package e2e

// A node moved from kube-proxy in iptables mode to Switchyard in nftables mode (issue
// 14): the pinned kube-proxy programs web → p1 in iptables mode and is stopped, which
// leaves its rules (it never cleans up on exit); web's endpoint then moves to p2 and
// Switchyard starts in nftables mode on the same node. It must remove kube-proxy's
// iptables chains and the jumps to them from both families, as kube-proxy v1.37 does
// when it starts in nftables mode, keep other programs' rules, and program its
// nftables table, so that web's traffic reaches p2 only: the stale KUBE-SERVICES
// jump in nat PREROUTING/OUTPUT would otherwise keep DNATing to p1.
//
//	node-1  kube-proxy (iptables mode, stopped), then switchyard --proxy-mode nftables
//	        pods p1 (web's old endpoint), p2 (web's endpoint), client

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// TestNFTablesModeRemovesIPTablesLeftovers runs the scenario once per iptables
// backend.
//
// mutation-checked: removing the c.cleanupLeftovers call from Controller.Run fails
// both (every KUBE- chain and jump left, the deleted service old still answered by
// p1, no log line); leftoverModes returning nil for nftables fails "nft" the same way;
// cleanIPTables cleaning the nft backend only fails "legacy" the same way.
func TestNFTablesModeRemovesIPTablesLeftovers(t *testing.T) {
	testbed.Require(t)
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			testNFTablesModeRemovesIPTablesLeftovers(t, backend)
		})
	}
}

// leftoverWorld is the scenario's node after kube-proxy ran in kubeProxyMode and was
// stopped, and old was deleted: web still goes to p1 and old is answered by p1
// through kube-proxy's stale rules.
type leftoverWorld struct {
	cluster       *testbed.Cluster
	node          *testbed.Node
	p2, client    *testbed.Pod
	web           *v1.Service
	addr, oldAddr string
}

func newLeftoverWorld(t *testing.T, backend, kubeProxyMode string) *leftoverWorld {
	ctx := t.Context()
	cluster := testbed.StartControlPlane(t, testbed.WithIPTablesBackend(backend))
	node := cluster.AddNode(t, "node-1", nil)
	p1, p2, client := cluster.AddPod(t, node, "p1"), cluster.AddPod(t, node, "p2"), cluster.AddPod(t, node, "client")
	web, err := cluster.CreateService(ctx, makeService("web", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.PublishEndpoints(ctx, web, ready(p1)); err != nil {
		t.Fatal(err)
	}
	addr := hostPort(web.Spec.ClusterIP, 80)
	old, err := cluster.CreateService(ctx, makeService("old", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.PublishEndpoints(ctx, old, ready(p1)); err != nil {
		t.Fatal(err)
	}
	oldAddr := hostPort(old.Spec.ClusterIP, 80)

	kubeProxy := cluster.AddKubeProxy(t, node, kubeProxyMode)
	for _, a := range []string{addr, oldAddr} {
		if err := waitForPods(ctx, client, "tcp", a, names(p1), syncWait); err != nil {
			t.Fatalf("kube-proxy in %s mode: %v", kubeProxyMode, err)
		}
	}
	if err := kubeProxy.Process.Stop(); err != nil {
		t.Fatal(err)
	}
	// old is deleted once kube-proxy is gone: only its stale rules still DNAT to p1.
	// (web's move to p2 below shows nothing, as the nftables table's DNAT runs before
	// the stale iptables one at the same hook and priority.)
	if err := cluster.Clientset.CoreV1().Services(namespace).Delete(ctx, "old", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	return &leftoverWorld{cluster: cluster, node: node, p2: p2, client: client, web: web, addr: addr, oldAddr: oldAddr}
}

// startSwitchyard moves web to p2, which only Switchyard's rules know, starts
// Switchyard in mode, and checks that web reaches p2 only, that the deleted old
// answers no more, and that the log says what was removed.
func (w *leftoverWorld) startSwitchyard(t *testing.T, mode, logLine string) {
	ctx := t.Context()
	if err := w.cluster.PublishEndpoints(ctx, w.web, ready(w.p2)); err != nil {
		t.Fatal(err)
	}
	sy := w.cluster.AddSwitchyard(t, w.node, testbed.SwitchyardOptions{Kubeconfig: w.cluster.AdminKubeconfig, ExtraArgs: []string{"--proxy-mode", mode}})
	t.Cleanup(func() {
		if err := sy.Process.Stop(); err != nil {
			t.Error(err)
		}
	})
	if err := waitForPods(ctx, w.client, "tcp", w.addr, names(w.p2), syncWait); err != nil {
		t.Errorf("after Switchyard started in %s mode: %v", mode, err)
	}
	if reply, err := testbed.Dial(ctx, w.client, "tcp", w.oldAddr); err == nil {
		t.Errorf("the deleted service old %s still answered (by %s): stale rules DNAT it", w.oldAddr, reply.Pod)
	}
	log, _ := sy.Log()
	if !strings.Contains(log, logLine) {
		t.Errorf("the log does not say %q:\n%s", logLine, log)
	}
}

func testNFTablesModeRemovesIPTablesLeftovers(t *testing.T, backend string) {
	ctx := t.Context()
	w := newLeftoverWorld(t, backend, "iptables")
	node := w.node
	// Others' rules, which must stay: kubelet's KUBE-FIREWALL (the testbed's nodes
	// have it, as kubelet writes it) and a foreign nat chain hooked into PREROUTING
	// next to kube-proxy's jump.
	for _, argv := range [][]string{
		{"iptables", "-w", "5", "-t", "nat", "-N", "E2E-FOREIGN"},
		{"iptables", "-w", "5", "-t", "nat", "-A", "PREROUTING", "-j", "E2E-FOREIGN"},
	} {
		if out, err := node.Exec(ctx, argv...); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	before := saveBoth(t, node)
	var foreign []string
	for line := range strings.SplitSeq(before["iptables"], "\n") {
		if strings.Contains(line, "KUBE-FIREWALL") || strings.Contains(line, "E2E-FOREIGN") {
			foreign = append(foreign, strings.TrimSpace(strings.SplitN(line, " [", 2)[0]))
		}
	}
	if len(foreign) < 4 {
		t.Fatalf("want kubelet's KUBE-FIREWALL and E2E-FOREIGN with their jumps, have %q:\n%s", foreign, before["iptables"])
	}
	// web is IPv4 only, so ip6tables has kube-proxy's fixed chains and jumps but no
	// endpoint chain.
	for prog, wants := range map[string][]string{
		"iptables":  {":KUBE-SERVICES", "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES", ":KUBE-SEP-"},
		"ip6tables": {":KUBE-SERVICES", "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
	} {
		for _, want := range wants {
			if !strings.Contains(before[prog], want) {
				t.Fatalf("kube-proxy left no %q in %s to clean up:\n%s", want, prog, before[prog])
			}
		}
	}

	w.startSwitchyard(t, "nftables", "Removed iptables rules left by kube-proxy or Switchyard")

	after := saveBoth(t, node)
	for prog, save := range after {
		for line := range strings.SplitSeq(save, "\n") {
			if strings.Contains(line, "KUBE-") && !strings.Contains(line, "KUBE-FIREWALL") && !strings.Contains(line, "KUBE-KUBELET-CANARY") && !strings.Contains(line, "KUBE-IPTABLES-HINT") {
				t.Errorf("%s-save still has kube-proxy's %q", prog, line)
			}
		}
	}
	for _, want := range foreign {
		if !strings.Contains(after["iptables"], want) {
			t.Errorf("the cleanup removed a rule that is not kube-proxy's: %q\n%s", want, after["iptables"])
		}
	}
	for _, family := range []string{"ip", "ip6"} {
		if out, err := node.Exec(ctx, "nft", "list", "chain", family, "kube-proxy", "services"); err != nil {
			t.Errorf("nftables table %s kube-proxy not programmed: %v\n%s", family, err, out)
		}
	}
}

// TestIPTablesModeRemovesNFTablesLeftovers is the way back: kube-proxy in nftables mode
// leaves its kube-proxy tables (ip and ip6), Switchyard starts in iptables mode and
// deletes them, as kube-proxy v1.37 does when it starts in iptables or IPVS mode, and
// leaves other tables alone.
//
// mutation-checked: leftoverModes returning nil for iptables fails it (both tables
// left, the deleted service old still answered by p1 through the stale table, no log
// line).
func TestIPTablesModeRemovesNFTablesLeftovers(t *testing.T) {
	testbed.Require(t)
	ctx := t.Context()
	w := newLeftoverWorld(t, "nft", "nftables")
	if out, err := w.node.Exec(ctx, "nft", "add", "table", "inet", "e2e-foreign"); err != nil {
		t.Fatalf("nft add table: %v\n%s", err, out)
	}
	if tables, err := w.node.Exec(ctx, "nft", "list", "tables"); err != nil || !strings.Contains(tables, "table ip kube-proxy") || !strings.Contains(tables, "table ip6 kube-proxy") {
		t.Fatalf("kube-proxy left no tables to clean up: %v\n%s", err, tables)
	}

	w.startSwitchyard(t, "iptables", "Deleted the kube-proxy nftables table left by nftables mode")

	tables, err := w.node.Exec(ctx, "nft", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tables, "kube-proxy") || !strings.Contains(tables, "table inet e2e-foreign") {
		t.Errorf("want only kube-proxy's tables deleted, have:\n%s", tables)
	}
	if save := saveBoth(t, w.node)["iptables"]; !strings.Contains(save, "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES") {
		t.Errorf("Switchyard's own iptables rules are missing:\n%s", save)
	}
}

// saveBoth returns iptables-save and ip6tables-save output of the node (the cluster's
// backend).
func saveBoth(t *testing.T, node *testbed.Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, prog := range []string{"iptables", "ip6tables"} {
		save, err := node.Exec(t.Context(), prog+"-save")
		if err != nil {
			t.Fatalf("%s-save: %v\n%s", prog, err, save)
		}
		out[prog] = save
	}
	return out
}
