package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/explain"
)

// The examples' IP plan is in pkg/explain/iptables_test.go: node-a is 192.168.10.11
// and fd00:10::11, shop/web:http is 10.96.10.10:80 with endpoints 10.244.1.5:8080
// (node-a) and 10.244.2.7:8080 (node-b), shop/legacy:http 10.96.50.50:80 has none.
var explainExamplesArgs = []string{"explain", "-f", "../../manifests/examples/", "--cluster-cidr", "10.244.0.0/16,fd00:244::/56"}

func runExplain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append(append([]string(nil), explainExamplesArgs...), args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestExplainOffline runs the command on the examples and checks the exit code and
// the lines a reader looks for. Mutation-checked: returning 0 for every verdict from
// explainPacket (instead of e.ExitCode()) fails "no endpoints"; picking the first
// config regardless of family in offlineInput fails "IPv6 cluster IP".
func TestExplainOffline(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{name: "cluster IP", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:80"}, wantCode: 0,
			want: []string{"Service:    shop/web:http, reached through its cluster IP", "10.244.1.5:8080          50.0%  on node node-a (this node)",
				"Verdict:    delivered"}},
		{name: "IPv6 cluster IP", args: []string{"--src", "fd00:244:1::99", "--dst", "[fd00:96::10]:80"}, wantCode: 0,
			want: []string{"shop/web:http", "[fd00:244:1::5]:8080", "Verdict:    delivered"}},
		{name: "no endpoints", args: []string{"--src", "10.244.1.99", "--dst", "10.96.50.50:80"}, wantCode: 1,
			want: []string{"Verdict:    rejected: shop/legacy:http has no endpoints"}},
		{name: "node port from outside", args: []string{"--src", "192.0.2.99", "--dst", "192.168.10.11:30443", "--from", "outside"}, wantCode: 0,
			want: []string{"reached through its node port", "Masquerade: yes: externalTrafficPolicy is Cluster", "Affinity:   ClientIP"}},
		{name: "not a service", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:81"}, wantCode: 0,
			want: []string{"Service:    none", "Verdict:    not-a-service: 10.96.10.10 is the cluster IP of shop/web"}},
		{name: "interface detection", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:80",
			"--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth"}, wantCode: 0,
			want: []string{"Masquerade: no"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runExplain(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

// TestExplainJSON checks -o json decodes into the shared type with the answer in it.
func TestExplainJSON(t *testing.T) {
	code, stdout, stderr := runExplain(t, "--src", "10.244.1.99", "--dst", "10.96.10.10:80", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var e explain.Explanation
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	var got []string
	for _, ep := range e.Endpoints {
		got = append(got, ep.Address.String())
	}
	if diff := cmp.Diff([]string{"10.244.1.5:8080", "10.244.2.7:8080"}, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	if e.Mode != "iptables" || e.Verdict != explain.Delivered || e.Service == nil || e.Service.Name != "web" || len(e.Steps) == 0 {
		t.Errorf("unexpected explanation: %+v", e)
	}
}

// TestExplainUsage checks bad input is one clear line and exit 2, with no output.
func TestExplainUsage(t *testing.T) {
	tests := map[string][]string{
		"explain needs --src IP and --dst IP:PORT":            {"--dst", "10.96.10.10:80"},
		`--dst "10.96.10.10": want IP:PORT`:                   {"--src", "10.244.1.99", "--dst", "10.96.10.10"},
		`--proto "icmp": want tcp, udp or sctp`:               {"--src", "10.244.1.99", "--dst", "10.96.10.10:80", "--proto", "icmp"},
		`--from "host": want pod, node or outside`:            {"--src", "10.244.1.99", "--dst", "10.96.10.10:80", "--from", "host"},
		"are of different IP families":                        {"--src", "fd00::1", "--dst", "10.96.10.10:80"},
		`-o "yaml": want text or json`:                        {"--src", "10.244.1.99", "--dst", "10.96.10.10:80", "-o", "yaml"},
		"has no IPv6 rules to explain":                        {"--src", "fd00::1", "--dst", "[fd00::2]:80", "--ip-family", "ipv4"},
		`--mode "userspace": want iptables, ipvs or nftables`: {"--src", "10.244.1.99", "--dst", "10.96.10.10:80", "--mode", "userspace"},
	}
	for want, args := range tests {
		code, stdout, stderr := runExplain(t, args...)
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", args, code, stderr, want)
		}
		if stdout != "" {
			t.Errorf("%v: wrote output %q", args, stdout)
		}
	}
}

// fakeKernel serves a canned iptables-save dump and address list, and an IPVS
// table when ipvs is set.
type fakeKernel struct {
	dump  []byte
	addrs []netip.Addr
	ipvs  *explain.IPVSKernel
}

func (k fakeKernel) IPVS() (explain.IPVSKernel, func(), error) {
	if k.ipvs == nil {
		return explain.IPVSKernel{}, nil, errors.New("no IPVS in this fake kernel")
	}
	return *k.ipvs, func() {}, nil
}

func (k fakeKernel) Save(context.Context, v1.IPFamily, string) ([]byte, error) { return k.dump, nil }
func (k fakeKernel) LocalAddrs() ([]netip.Addr, error)                         { return k.addrs, nil }

// TestExplainLive explains from a node's iptables-save dump, as --live reads it: the
// dump is the examples' rules as node-a holds them (rendered offline, then saved),
// and with no -f nothing names the pods. Mutation-checked: leaving NodeAddrs empty in
// liveInput fails the node-port row (no --dst-type LOCAL match, so not a service).
func TestExplainLive(t *testing.T) {
	opts, eo := parseExplainFlags(t, append(explainExamplesArgs[1:], "--src", "10.244.1.99", "--dst", "10.96.10.10:80"))
	pkt, err := eo.packet()
	if err != nil {
		t.Fatal(err)
	}
	offline, code := offlineInput(context.Background(), opts, pkt, io.Discard)
	if offline == nil {
		t.Fatalf("offline input: exit %d", code)
	}
	kernel := fakeKernel{dump: []byte(offline.Rules.Save()), addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.10.11")}}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{name: "cluster IP, no objects", args: []string{"--src", "10.244.1.99", "--dst", "10.96.10.10:80"},
			want: []string{"10.244.1.5:8080          50.0%\n", "Verdict:    delivered"}},
		{name: "node port", args: []string{"--src", "192.0.2.99", "--dst", "192.168.10.11:30443", "--from", "outside"},
			want: []string{"node port of shop/api:https", "Masquerade: yes"}},
		{name: "objects name the nodes", args: []string{"--live", "-f", "../../manifests/examples/", "--node", "node-a", "--src", "10.244.1.99", "--dst", "10.96.10.10:80"},
			want: []string{"10.244.1.5:8080          50.0%  on node node-a (this node)"}},
		{name: "reject", args: []string{"--src", "10.244.1.99", "--dst", "10.96.50.50:80"}, wantCode: 1,
			want: []string{"Verdict:    rejected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, eo := parseExplainFlags(t, tt.args)
			eo.kernel = kernel
			var stdout, stderr bytes.Buffer
			if code := explainPacket(context.Background(), opts, eo, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

func parseExplainFlags(t *testing.T, args []string) (*dryRunOptions, *explainOptions) {
	t.Helper()
	fs := pflag.NewFlagSet("explain", pflag.ContinueOnError)
	var opts dryRunOptions
	opts.register(fs)
	var eo explainOptions
	eo.registerExplain(fs)
	eo.ipvs = registerIPVSDryRun(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	opts.files = append(opts.files, fs.Args()...)
	return &opts, &eo
}

// TestExplainLiveFallback: a node whose dump holds rules switchyard cannot parse
// (-m physdev) or trace (-m set) is explained from kube-proxy's chains alone, with a
// warning. Mutation-checked: not setting eo.fallback after a successful parse fails
// "cannot trace" (exit 1, "tracer does not support match").
func TestExplainLiveFallback(t *testing.T) {
	kube := `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-A - [0:0]
%s
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "ns/a:p cluster IP" -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.244.2.5:8080" -j KUBE-SEP-A
-A KUBE-SEP-A -p tcp -m comment --comment ns/a:p -m tcp -j DNAT --to-destination 10.244.2.5:8080
COMMIT
`
	tests := map[string]string{
		"cannot parse": "-A PREROUTING -m physdev --physdev-is-bridged -j ACCEPT",
		"cannot trace": "-A PREROUTING -m set --match-set cali40all-hosts-net src -j ACCEPT",
	}
	for name, foreign := range tests {
		t.Run(name, func(t *testing.T) {
			opts, eo := parseExplainFlags(t, []string{"--src", "10.244.1.9", "--dst", "10.96.0.1:80"})
			eo.kernel = fakeKernel{dump: []byte(fmt.Sprintf(kube, foreign)), addrs: []netip.Addr{netip.MustParseAddr("192.168.10.11")}}
			var stdout, stderr bytes.Buffer
			if code := explainPacket(context.Background(), opts, eo, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "explaining with kube-proxy's rules alone: 1 rules of other software are left out") {
				t.Errorf("no warning on stderr:\n%s", stderr.String())
			}
			if !strings.Contains(stdout.String(), "Verdict:    delivered: every new connection is sent to 10.244.2.5:8080") {
				t.Errorf("output:\n%s", stdout.String())
			}
		})
	}
}
