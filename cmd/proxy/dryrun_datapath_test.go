package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

// TestDryRunDatapathFlags checks the dry-run flags that mirror the daemon's
// local-traffic detection, masquerade bit, conntrack liberalness and node-port
// keywords. The examples' Node has podCIDRs 10.244.1.0/24 and fd00:244:1::/64 and
// addresses 192.168.10.11 and fd00:10::11.
func TestDryRunDatapathFlags(t *testing.T) {
	base := []string{"dry-run", "-f", "../../manifests/examples/", "--cluster-cidr", "10.244.0.0/16,fd00:244::/56"}
	tests := []struct {
		name          string
		args          []string
		want, notWant []string
	}{
		{name: "NodeCIDR from the Node's podCIDRs", args: []string{"--detect-local-mode", "NodeCIDR"},
			want: []string{"! -s 10.244.1.0/24 -j KUBE-MARK-MASQ", "! -s fd00:244:1::/64 -j KUBE-MARK-MASQ"}, notWant: []string{"! -s 10.244.0.0/16"}},
		{name: "NodeCIDR from --node-cidr", args: []string{"--detect-local-mode", "NodeCIDR", "--node-cidr", "10.244.7.0/24"},
			want: []string{"! -s 10.244.7.0/24 -j KUBE-MARK-MASQ"}, notWant: []string{"! -s 10.244.1.0/24", "! -s fd00:244"}},
		{name: "BridgeInterface", args: []string{"--detect-local-mode", "BridgeInterface", "--pod-bridge-interface", "cbr0"},
			want: []string{"! -i cbr0 -j KUBE-MARK-MASQ"}, notWant: []string{"! -s 10.244"}},
		{name: "InterfaceNamePrefix", args: []string{"--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth"},
			want: []string{"! -i veth+ -j KUBE-MARK-MASQ"}, notWant: []string{"! -s 10.244"}},
		{name: "masquerade bit", args: []string{"--iptables-masquerade-bit", "0"},
			want: []string{"-A KUBE-MARK-MASQ -j MARK --or-mark 0x1\n", "-m mark ! --mark 0x1/0x1 -j RETURN"}, notWant: []string{"0x4000"}},
		{name: "tcp be liberal: no INVALID drop", args: []string{"--conntrack-tcp-be-liberal"},
			notWant: []string{"--ctstate INVALID"}},
		{name: "nfacct counters", args: []string{"--nfacct", "--iptables-localhost-nodeports"},
			want: []string{"-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP",
				"-d 127.0.0.0/8 --dport 30443 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-"}},
		{name: "default: INVALID drop", want: []string{"-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"}},
		{name: "nodeport-addresses primary", args: []string{"--nodeport-addresses", "primary"},
			want: []string{"-d 192.168.10.11 -j KUBE-NODEPORTS", "-d fd00:10::11 -j KUBE-NODEPORTS"}, notWant: []string{"--dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"}},
		{name: "nodeport-addresses localhost with localhost node ports", args: []string{"--nodeport-addresses", "localhost", "--iptables-localhost-nodeports"},
			want: []string{"-d 127.0.0.1 -j KUBE-NODEPORTS", `-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8`}},
		{name: "nodeport-addresses primary with localhost node ports: no martian rule", args: []string{"--nodeport-addresses", "primary", "--iptables-localhost-nodeports"},
			notWant: []string{"-A KUBE-FIREWALL", "127.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append(append([]string(nil), base...), tt.args...), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
			}
			out := stdout.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q", w)
				}
			}
			for i, section := range splitFamilies(out) {
				family := ruleset.IPv4
				if i == 1 {
					family = ruleset.IPv6
				}
				if err := ruleset.New(family).Apply([]byte(section), true); err != nil {
					t.Errorf("section %d does not load: %v", i, err)
				}
			}
			if tt.name == "tcp be liberal: no INVALID drop" && !strings.Contains(out, "kubernetes forwarding rules") {
				t.Error("KUBE-FORWARD's other rules are missing")
			}
		})
	}
}

// TestDryRunDatapathBadFlags checks each bad value is one clear line and exit 2.
func TestDryRunDatapathBadFlags(t *testing.T) {
	base := []string{"dry-run", "-f", "../../manifests/examples/"}
	tests := map[string][]string{
		`--detect-local-mode "Bridge"`:                                        {"--detect-local-mode", "Bridge"},
		"needs --pod-bridge-interface":                                        {"--detect-local-mode", "BridgeInterface"},
		"needs --pod-interface-name-prefix":                                   {"--detect-local-mode", "InterfaceNamePrefix"},
		"--iptables-masquerade-bit 32: must be within [0, 31]":                {"--iptables-masquerade-bit", "32"},
		`--nodeport-addresses[0]: invalid value "eth0": must be a valid CIDR`: {"--nodeport-addresses", "eth0"},
	}
	for want, args := range tests {
		var stdout, stderr bytes.Buffer
		code := run(append(append([]string(nil), base...), args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", args, code, stderr.String(), want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: wrote output", args)
		}
	}
}

// TestDryRunIPVSDetectLocal checks the IPVS-mode dry-run takes the same flags: the
// companion cluster-IP masquerade rule uses the detector, the marks the bit.
func TestDryRunIPVSDetectLocal(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"dry-run", "--mode", "ipvs", "-f", "../../manifests/examples/", "--detect-local-mode", "InterfaceNamePrefix",
		"--pod-interface-name-prefix", "cali", "--iptables-masquerade-bit", "3"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"--match-set KUBE-CLUSTER-IP dst,dst ! -i cali+ -j KUBE-MARK-MASQ", "-A KUBE-MARK-MASQ -j MARK --or-mark 0x8"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("IPVS dry-run lacks %q", want)
		}
	}
}
