package iptables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// detectLocalWorld is a cluster-IP service and a Local-policy node port, each with an
// endpoint on this node and one on node2 (IP plan in builders_test.go; the pods of
// node1 sit behind bridge "cbr0" on ports "veth*", node1's pod CIDR is 10.180.0.0/24).
func detectLocalWorld() []any {
	local := func(ip string) ep { return ep{IP: ip, Node: testNode} }
	remote := func(ip string) ep { return ep{IP: ip, Node: otherNode} }
	return []any{
		makeService("ns", "clusterip", "172.30.0.10"),
		makeSlice("ns", "clusterip", "clusterip-1", 80, local("10.180.0.1"), remote("10.180.1.1")),
		makeService("ns", "np-local", "172.30.0.13", withNodePort(30013), withExternalLocal),
		makeSlice("ns", "np-local", "np-local-1", 80, local("10.180.0.3"), remote("10.180.1.3")),
	}
}

// TestPacketPathsDetectLocal traces, for each --detect-local-mode, which traffic to a
// cluster IP is masqueraded (what the detector calls not local) and which node-port
// traffic under Local policy is short-circuited to every endpoint (what it calls
// local). mutation-checked: writing IfLocal where IfNotLocal belongs in the
// masquerade rule (dropping the "!") fails every "masqueraded"/"not masqueraded" row;
// dropping the "+" of the prefix mode fails the InterfaceNamePrefix rows.
func TestPacketPathsDetectLocal(t *testing.T) {
	clusterBoth := []string{"10.180.0.1:80", "10.180.1.1:80"}
	npBoth := []string{"10.180.0.3:80", "10.180.1.3:80"}
	npLocal := []string{"10.180.0.3:80"}
	ext := tracer.FromPodOrExternal
	local := tracer.FromLocalProcess
	// Rows shared by every mode: the node itself and a true outsider are masqueraded.
	common := []packetCase{
		{name: "node to cluster IP: masqueraded", src: nodeIPv4, dst: "172.30.0.10", port: 80, origin: local, wantEndpoints: clusterBoth, wantMasq: clusterBoth},
		{name: "outsider on eth0 to cluster IP: masqueraded", src: outsideSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: clusterBoth, wantMasq: clusterBoth},
		{name: "outsider to Local node port: local endpoint, source kept", src: outsideSrc, dst: nodeIPv4, port: 30013, origin: ext, wantEndpoints: npLocal},
	}
	tests := []struct {
		name     string
		detector node.LocalDetector
		cases    []packetCase
	}{
		{
			name:     "ClusterCIDR",
			detector: node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix(testClusterV4)),
			cases: []packetCase{
				{name: "pod of this node: not masqueraded", src: podSrc, dst: "172.30.0.10", port: 80, origin: ext, inIface: "veth1", wantEndpoints: clusterBoth},
				{name: "pod of another node: not masqueraded", src: otherPodSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: clusterBoth},
				{name: "pod to Local node port: short-circuited", src: podSrc, dst: nodeIPv4, port: 30013, origin: ext, inIface: "veth1", wantEndpoints: npBoth},
			},
		},
		{
			name:     "NodeCIDR",
			detector: node.DetectByCIDR(node.LocalModeNodeCIDR, netip.MustParsePrefix("10.180.0.0/24")),
			cases: []packetCase{
				{name: "pod of this node: not masqueraded", src: podSrc, dst: "172.30.0.10", port: 80, origin: ext, inIface: "veth1", wantEndpoints: clusterBoth},
				{name: "pod of another node: masqueraded", src: otherPodSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: clusterBoth, wantMasq: clusterBoth},
				{name: "pod to Local node port: short-circuited", src: podSrc, dst: nodeIPv4, port: 30013, origin: ext, inIface: "veth1", wantEndpoints: npBoth},
				{name: "pod of another node to Local node port: local endpoint only", src: otherPodSrc, dst: nodeIPv4, port: 30013, origin: ext, wantEndpoints: npLocal},
			},
		},
		{
			name:     "BridgeInterface",
			detector: node.LocalDetector{Mode: node.LocalModeBridgeInterface, Interface: "cbr0"},
			cases: []packetCase{
				{name: "pod on the bridge: not masqueraded", src: podSrc, dst: "172.30.0.10", port: 80, origin: ext, inIface: "cbr0", wantEndpoints: clusterBoth},
				{name: "pod address on eth0 (another node's pod): masqueraded", src: otherPodSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: clusterBoth, wantMasq: clusterBoth},
				{name: "another bridge: masqueraded", src: podSrc, dst: "172.30.0.10", port: 80, origin: ext, inIface: "cbr01", wantEndpoints: clusterBoth, wantMasq: clusterBoth},
				{name: "pod on the bridge to Local node port: short-circuited", src: podSrc, dst: nodeIPv4, port: 30013, origin: ext, inIface: "cbr0", wantEndpoints: npBoth},
			},
		},
		{
			name:     "InterfaceNamePrefix",
			detector: node.LocalDetector{Mode: node.LocalModeInterfaceNamePrefix, Interface: "veth"},
			cases: []packetCase{
				{name: "pod on a veth: not masqueraded", src: podSrc, dst: "172.30.0.10", port: 80, origin: ext, inIface: "veth1a2b", wantEndpoints: clusterBoth},
				{name: "pod address on eth0: masqueraded", src: otherPodSrc, dst: "172.30.0.10", port: 80, origin: ext, wantEndpoints: clusterBoth, wantMasq: clusterBoth},
				{name: "interface named like the prefix's start only: masqueraded", src: podSrc, dst: "172.30.0.10", port: 80, origin: ext, inIface: "vet", wantEndpoints: clusterBoth, wantMasq: clusterBoth},
				{name: "pod on a veth to Local node port: short-circuited", src: podSrc, dst: nodeIPv4, port: 30013, origin: ext, inIface: "veth9", wantEndpoints: npBoth},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Local = tt.detector
			rs := programmed(t, cfg, detectLocalWorld()...)
			n := tracer.Node{LocalAddrs: []netip.Addr{netip.MustParseAddr(nodeIPv4)}}
			runPacketCases(t, rs, n, append(append([]packetCase(nil), common...), tt.cases...))
		})
	}
}

// TestDetectLocalRuleText pins the exact rules kube-proxy v1.37.2 writes with each
// detector, so that adopting its chains rewrites nothing.
func TestDetectLocalRuleText(t *testing.T) {
	svcName := endpoints.ServicePortName{NamespacedName: nsName("ns", "clusterip"), Port: "p80", Protocol: v1.ProtocolTCP}
	npName := endpoints.ServicePortName{NamespacedName: nsName("ns", "np-local"), Port: "p80", Protocol: v1.ProtocolTCP}
	tests := []struct {
		detector     node.LocalDetector
		masq, podExt string
	}{
		{node.DetectByCIDR(node.LocalModeNodeCIDR, netip.MustParsePrefix("10.180.0.0/24")),
			`-A %SVC -m comment --comment "ns/clusterip:p80 cluster IP" -m tcp -p tcp -d 172.30.0.10 --dport 80 ! -s 10.180.0.0/24 -j KUBE-MARK-MASQ`,
			`-A %EXT -m comment --comment "pod traffic for ns/np-local:p80 external destinations" -s 10.180.0.0/24 -j %NPSVC`},
		{node.LocalDetector{Mode: node.LocalModeBridgeInterface, Interface: "cbr0"},
			`-A %SVC -m comment --comment "ns/clusterip:p80 cluster IP" -m tcp -p tcp -d 172.30.0.10 --dport 80 ! -i cbr0 -j KUBE-MARK-MASQ`,
			`-A %EXT -m comment --comment "pod traffic for ns/np-local:p80 external destinations" -i cbr0 -j %NPSVC`},
		{node.LocalDetector{Mode: node.LocalModeInterfaceNamePrefix, Interface: "veth"},
			`-A %SVC -m comment --comment "ns/clusterip:p80 cluster IP" -m tcp -p tcp -d 172.30.0.10 --dport 80 ! -i veth+ -j KUBE-MARK-MASQ`,
			`-A %EXT -m comment --comment "pod traffic for ns/np-local:p80 external destinations" -i veth+ -j %NPSVC`},
		{node.LocalDetector{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.detector.Mode), func(t *testing.T) {
			cfg := testConfig()
			cfg.Local = tt.detector
			plan := Render(snapshotOf(t, detectLocalWorld()...), cfg, nil)
			replacer := strings.NewReplacer("%SVC", ServiceChain(svcName), "%EXT", ExternalChain(npName), "%NPSVC", ServiceChain(npName))
			lines := strings.Split(string(plan.Payload), "\n")
			var masq, podExt string
			for _, l := range lines {
				if strings.HasPrefix(l, "-A "+ServiceChain(svcName)+" ") && strings.Contains(l, "KUBE-MARK-MASQ") {
					masq = l
				}
				if strings.Contains(l, "pod traffic for") {
					podExt = l
				}
			}
			if diff := cmp.Diff(replacer.Replace(tt.masq), masq); diff != "" {
				t.Errorf("masquerade rule (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(replacer.Replace(tt.podExt), podExt); diff != "" {
				t.Errorf("pod short-circuit rule (-want +got):\n%s", diff)
			}
			if _, err := ruleset.Parse(plan.Payload); err != nil {
				t.Errorf("payload does not parse: %v", err)
			}
		})
	}
}
