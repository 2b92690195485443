package e2e

// The datapath subtests run on node-6 (added for them: 10.250.0.16, outside
// 10.251.0.16, pod f1 at 10.244.6.2 behind bridge sy-br on port sy-p0) with one
// Switchyard restarted with each configuration. Service "detect" has a single
// endpoint, b1 on node-2, so the address b1 sees tells whether node-6
// masqueraded the connection: f1's own address, or node-6's 10.250.0.16. The
// outside client reaches the cluster IP through a /32 route to node-6's outside
// address, as a router in front of a cluster with routed service IPs would.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// datapathFixture is node-6, its pod and its Switchyard.
type datapathFixture struct {
	node *testbed.Node
	pod  *testbed.Pod
	sy   *testbed.Switchyard
	base []string // the Switchyard's command line without the case's flags
}

// restart runs node-6's Switchyard again with extra flags after the base command
// line, and waits until it is healthy.
func (f *datapathFixture) restart(ctx context.Context, extra ...string) error {
	f.sy.Args = append(slices.Clone(f.base), extra...)
	return f.sy.Restart(ctx)
}

func (s *suite) testDatapath(t *testing.T) {
	ctx := t.Context()
	c := s.cluster
	f := &datapathFixture{node: c.AddNode(t, "node-6", map[string]string{v1.LabelTopologyZone: "zone-a"})}
	f.pod = c.AddPod(t, f.node, "f1")
	detect, err := c.CreateService(ctx, makeService("detect", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), detect) })
	if err := c.PublishEndpoints(ctx, detect, ready(s.b1)); err != nil {
		t.Fatal(err)
	}
	c.RouteFromOutside(t, detect.Spec.ClusterIP+"/32", f.node)
	f.sy = c.AddSwitchyard(t, f.node, testbed.SwitchyardOptions{})
	f.base = slices.Clone(f.sy.Args)
	t.Cleanup(func() { _ = f.sy.Process.Stop() })

	t.Run("detect-local modes", func(t *testing.T) { s.testDetectLocal(t, f, hostPort(detect.Spec.ClusterIP, 80)) })
	t.Run("localhost node ports", func(t *testing.T) { s.testLocalhostNodePorts(t, f) })
	t.Run("conntrack settings", func(t *testing.T) { s.testConntrackSettings(t, f) })
	t.Run("randomised differential against kube-proxy", func(t *testing.T) { s.testRandomDifferential(t, f) })
}

// testDetectLocal: with each --detect-local-mode, a pod of the node reaching a
// cluster IP keeps its address and an outside client is masqueraded; a detector
// that does not match the pods' interface masquerades the pod too, which shows the
// detector is what decides. InterfaceNamePrefix uses "sy-b": with br_netfilter, a
// routed packet from a bridged pod enters iptables with the bridge (sy-br) as its
// input interface, not the pod's port. mutation-checked: making IfNotLocal return
// the IfLocal arguments (no "!") fails every row.
func (s *suite) testDetectLocal(t *testing.T, f *datapathFixture, addr string) {
	ctx := t.Context()
	nodeIP := f.node.IP
	for _, tc := range []struct {
		name        string
		args        []string
		podMasq     bool
		wantRuleArg string // in the KUBE-SVC chain's masquerade rule
	}{
		{"ClusterCIDR", []string{"--detect-local-mode", "ClusterCIDR"}, false, "! -s 10.244.0.0/16"},
		{"NodeCIDR", []string{"--detect-local-mode", "NodeCIDR"}, false, "! -s " + f.node.PodCIDR},
		{"BridgeInterface", []string{"--detect-local-mode", "BridgeInterface", "--pod-bridge-interface", "sy-br"}, false, "! -i sy-br"},
		{"BridgeInterface naming another bridge", []string{"--detect-local-mode", "BridgeInterface", "--pod-bridge-interface", "cbr0"}, true, "! -i cbr0"},
		{"InterfaceNamePrefix", []string{"--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "sy-b"}, false, "! -i sy-b+"},
		{"InterfaceNamePrefix not matching", []string{"--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth"}, true, "! -i veth+"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.restart(ctx, tc.args...); err != nil {
				t.Fatal(err)
			}
			dump := ruleDump(ctx, t, f.node)
			found := false
			for _, l := range strings.Split(dump, "\n") {
				found = found || (strings.HasPrefix(l, "-A KUBE-SVC-") && strings.Contains(l, tc.wantRuleArg+" ") && strings.HasSuffix(l, "-j KUBE-MARK-MASQ"))
			}
			if !found {
				t.Errorf("no KUBE-SVC masquerade rule with %q in node-6's rules:\n%s", tc.wantRuleArg, grepLines(dump, "KUBE-MARK-MASQ"))
			}
			wantPodSource := f.pod.IP
			if tc.podMasq {
				wantPodSource = nodeIP
			}
			if _, err := testbed.WaitForReply(ctx, f.pod, "tcp", addr, syncWait, sourceIs(wantPodSource)); err != nil {
				t.Errorf("from pod f1: %v", err)
			}
			if _, err := testbed.WaitForReply(ctx, s.cluster.Outside, "tcp", addr, syncWait, sourceIs(nodeIP)); err != nil {
				t.Errorf("from the outside client: %v", err)
			}
		})
	}
}

// sourceIs accepts a reply whose source address is want.
func sourceIs(want string) func(testbed.Reply) error {
	return func(r testbed.Reply) error {
		if r.SourceIP() != want {
			return fmt.Errorf("%s saw source %s, want %s", r.Pod, r.Source, want)
		}
		return nil
	}
}

// grepLines returns the lines of text containing sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// testLocalhostNodePorts: 127.0.0.1:NODEPORT answers from inside the node with
// --iptables-localhost-nodeports (route_localnet set, martian drop rule written),
// also when --nodeport-addresses names localhost, and is refused without it.
// Where the kernel has nfacct, the connection is counted. mutation-checked: not
// writing route_localnet in initNode fails both "on" rows (the connection times out).
func (s *suite) testLocalhostNodePorts(t *testing.T, f *datapathFixture) {
	ctx := t.Context()
	addr := hostPort("127.0.0.1", nodePort)
	want := names(s.a1, s.b1, s.c1)
	routeLocalnet := func() string {
		out, err := f.node.Exec(ctx, "sysctl", "-n", "net.ipv4.conf.all.route_localnet")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	t.Run("off", func(t *testing.T) {
		if err := f.restart(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := testbed.Dial(ctx, f.node, "tcp", addr); err == nil {
			t.Errorf("%s answered with localhost node ports off", addr)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"on", []string{"--iptables-localhost-nodeports"}},
		{"on, nodeport-addresses primary and localhost", []string{"--iptables-localhost-nodeports", "--nodeport-addresses", "primary,localhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.restart(ctx, tc.args...); err != nil {
				t.Fatal(err)
			}
			if got := routeLocalnet(); got != "1" {
				t.Errorf("route_localnet = %s, want 1", got)
			}
			if err := waitForPods(ctx, f.node, "tcp", addr, want, syncWait); err != nil {
				t.Fatal(err)
			}
			// iptables-save prints the nfacct option with two spaces.
			dump := strings.ReplaceAll(ruleDump(ctx, t, f.node), "--nfacct-name  ", "--nfacct-name ")
			if !strings.Contains(dump, `-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`) {
				t.Errorf("no martian drop rule:\n%s", grepLines(dump, "KUBE-FIREWALL"))
			}
			if strings.Contains(dump, "--nfacct-name localhost_nps_accepted_pkts") {
				metrics, err := f.sy.Metrics(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if v, ok := metricValue(metrics, "kubeproxy_iptables_localhost_nodeports_accepted_packets_total"); !ok || v == 0 {
					t.Errorf("kubeproxy_iptables_localhost_nodeports_accepted_packets_total = %v (present %v), want > 0", v, ok)
				}
				if _, ok := metricValue(metrics, "kubeproxy_iptables_ct_state_invalid_dropped_packets_total"); !ok {
					t.Error("kubeproxy_iptables_ct_state_invalid_dropped_packets_total is missing")
				}
				if !strings.Contains(dump, "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP") {
					t.Errorf("INVALID drop rule without its counter:\n%s", grepLines(dump, "INVALID"))
				}
				t.Logf("nfacct: %s", grepLines(metrics, "nodeports_accepted_packets_total "))
			} else if log, _ := f.sy.Log(); !strings.Contains(log, "No nfacct support") {
				// Rules without counters are right only where the kernel has no nfacct,
				// and Switchyard says so at start.
				t.Errorf("no nfacct counters in the rules, yet Switchyard did not report missing nfacct support:\n%s", grepLines(dump, "INVALID"))
			} else {
				t.Logf("no nfacct in this kernel; Switchyard's log says: %s", grepLines(log, "nfacct"))
			}
		})
	}
	t.Run("asked for, but nodeport-addresses primary only", func(t *testing.T) {
		if err := f.restart(ctx, "--iptables-localhost-nodeports", "--nodeport-addresses", "primary"); err != nil {
			t.Fatal(err)
		}
		if _, err := testbed.Dial(ctx, f.node, "tcp", addr); err == nil {
			t.Errorf("%s answered with node ports on the primary address only", addr)
		}
		if err := waitForPods(ctx, f.node, "tcp", hostPort(f.node.IP, nodePort), want, syncWait); err != nil {
			t.Error(err)
		}
	})
}

// testConntrackSettings: per-namespace conntrack sysctls are applied; with
// tcp_be_liberal the INVALID drop rule is gone; and an nf_conntrack_max that a
// non-initial namespace cannot raise stops Switchyard with kube-proxy's error
// (nf_conntrack_max is read-only there, so nothing outside the namespace is
// written: the failure comes before the module's hashsize is looked at).
func (s *suite) testConntrackSettings(t *testing.T, f *datapathFixture) {
	ctx := t.Context()
	sysctl := func(name string) string {
		out, err := f.node.Exec(ctx, "sysctl", "-n", name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if err := f.restart(ctx, "--conntrack-tcp-be-liberal", "--conntrack-tcp-timeout-close-wait", "30m", "--conntrack-udp-timeout", "45s"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"net.netfilter.nf_conntrack_tcp_be_liberal":         "1",
		"net.netfilter.nf_conntrack_tcp_timeout_close_wait": "1800",
		"net.netfilter.nf_conntrack_udp_timeout":            "45",
	} {
		if got := sysctl(name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if dump := ruleDump(ctx, t, f.node); strings.Contains(dump, "--ctstate INVALID") {
		t.Errorf("INVALID drop rule written with tcp_be_liberal:\n%s", grepLines(dump, "INVALID"))
	}

	// Read-only nf_conntrack_max: the process must exit, not run half-configured.
	f.sy.Args = append(slices.Clone(f.base), "--conntrack-max-per-core", "1000000", "--conntrack-min", "1000000")
	err := f.sy.Restart(ctx)
	if err == nil || !strings.Contains(err.Error(), "could not set conntrack parameters") {
		t.Errorf("restart with an nf_conntrack_max the namespace cannot write: %v", err)
	}
	// Leave node-6 with a working proxy and be_liberal back at the kernel's default.
	if _, err := f.node.Exec(ctx, "sysctl", "-w", "net.netfilter.nf_conntrack_tcp_be_liberal=0"); err != nil {
		t.Fatal(err)
	}
	if err := f.restart(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(syncWait)
	for !strings.Contains(ruleDump(ctx, t, f.node), "-A KUBE-FORWARD -m conntrack --ctstate INVALID") {
		if time.Now().After(deadline) {
			t.Fatal("the INVALID drop rule did not come back with tcp_be_liberal=0")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
