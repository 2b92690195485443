//go:build ipvsguest && linux

package ipvs

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// bridgeIP is the node's address on the pod bridge: MASQUERADE picks it as the source
// of connections it sends to a pod.
const bridgeIP = "10.244.1.1"

// TestGuestDetectLocal checks --detect-local-mode in IPVS mode against the real
// kernel. kube-proxy's IPVS mode uses the detector in one rule only (proxier.go
// writeIptablesRules): "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst
// <IfNotLocal> -j KUBE-MARK-MASQ", so a pod of this node reaching a cluster IP keeps
// its own address while an outside client of the same cluster IP is masqueraded (to
// the node's address on the pod bridge). Node ports are masqueraded whatever the
// detector says (KUBE-NODE-PORT marks them unless the policy is Local). A detector
// that does not match the pods masquerades the pod too, which shows the detector is
// what decides.
//
// Each row builds its detector the way the daemon does (node.FamilyConfigs from the
// Node's facts and the flags). InterfaceNamePrefix matches with "br", the bridge's
// prefix, and not with "v-", the prefix of the pods' host-side veth ports: a routed
// packet from a bridged pod enters iptables with the bridge as its input interface,
// with or without br_netfilter (which hands the IPv4 hooks the bridge, the "logical"
// device, and keeps the port for -m physdev only), as the iptables-mode testbed case
// (test/e2e testDetectLocal) found too.
//
// mutation-checked: writing cfg.Local.IfLocal() instead of IfNotLocal() in
// pkg/ipvs RenderRules (dropping the "!") fails every row: the matching rows' pod is
// masqueraded (source 10.244.1.1, want 10.244.1.11), the outside client of the
// cluster IP is no longer masqueraded (source 192.168.100.2, want 10.244.1.1) and the
// control rows' pod keeps its address (want 10.244.1.1).
func TestGuestDetectLocal(t *testing.T) {
	topology(t)
	facts := node.Facts{Name: "node", IPs: []netip.Addr{netip.MustParseAddr(nodeIPText)},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}}
	web := svcPort("web", "10.96.0.40", func(sp *endpoints.ServicePort) { sp.NodePort = 30040 })
	for _, tc := range []struct {
		name     string
		opts     node.Options
		wantRule string // the detector's arguments in the KUBE-SERVICES masquerade rule
		podMasq  bool
	}{
		{"ClusterCIDR", node.Options{DetectLocalMode: node.LocalModeClusterCIDR,
			ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, "! -s 10.244.0.0/16", false},
		{"NodeCIDR", node.Options{DetectLocalMode: node.LocalModeNodeCIDR}, "! -s 10.244.1.0/24", false},
		{"BridgeInterface", node.Options{DetectLocalMode: node.LocalModeBridgeInterface, BridgeInterface: "br0"}, "! -i br0", false},
		{"InterfaceNamePrefix", node.Options{DetectLocalMode: node.LocalModeInterfaceNamePrefix, InterfaceNamePrefix: "br"}, "! -i br+", false},
		{"BridgeInterface naming another bridge", node.Options{DetectLocalMode: node.LocalModeBridgeInterface, BridgeInterface: "cbr0"}, "! -i cbr0", true},
		{"InterfaceNamePrefix of the bridge ports", node.Options{DetectLocalMode: node.LocalModeInterfaceNamePrefix, InterfaceNamePrefix: "v-"}, "! -i v-+", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := node.FamilyConfigs(facts, []v1.IPFamily{v1.IPv4Protocol}, tc.opts)[0].Local
			// A new Proxier over the previous row's state, as after a restart with
			// other flags: its first sync is full and rewrites KUBE-SERVICES.
			p := newProxier(t, func(c *ipvs.Config) { c.Local = local })
			w := newWorld()
			w.set(web, "pod-b")
			sync(t, p, w)

			out, err := exec.Command("iptables-nft-save", "-t", "nat").CombinedOutput()
			if err != nil {
				t.Fatalf("iptables-save: %v\n%s", err, out)
			}
			// Exactly the row's rule: the previous row's must be gone.
			var rules []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "-A KUBE-SERVICES ") && strings.Contains(l, "KUBE-CLUSTER-IP dst,dst") && strings.HasSuffix(l, "-j KUBE-MARK-MASQ") {
					rules = append(rules, l)
				}
			}
			if len(rules) != 1 || !strings.Contains(rules[0], tc.wantRule+" ") {
				t.Errorf("want one KUBE-SERVICES cluster-IP masquerade rule with %q, the kernel has %q", tc.wantRule, rules)
			}

			wantPod := pods["pod-a"]
			if tc.podMasq {
				wantPod = bridgeIP
			}
			for _, c := range []struct{ from, dst, want string }{
				{"pod-a", "10.96.0.40:80", wantPod},
				{client, "10.96.0.40:80", bridgeIP},
				{client, nodeIPText + ":30040", bridgeIP},
			} {
				if got := sourceSeen(t, c.from, c.dst); got != c.want {
					t.Errorf("%s -> %s: pod-b saw source %s, want %s", c.from, c.dst, got, c.want)
				}
			}
		})
	}
}

// sourceSeen connects from namespace ns to dst, checks that pod-b (the service's only
// endpoint) answered and returns the client address pod-b saw.
func sourceSeen(t *testing.T, ns, dst string) string {
	t.Helper()
	c, err := dialFrom(ns, "", dst, 3*time.Second)
	if err != nil {
		t.Fatalf("connecting %s -> %s: %v", ns, dst, err)
	}
	defer c.Close()
	if c.pod != "pod-b" {
		t.Fatalf("%s -> %s answered by %q, want pod-b", ns, dst, c.pod)
	}
	src, err := c.source()
	if err != nil {
		t.Fatalf("%s -> %s: asking for the source: %v", ns, dst, err)
	}
	return src
}
