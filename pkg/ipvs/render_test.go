package ipvs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
)

var cmpAddrs = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})

// serverView is a DesiredServer as the tests spell it.
type serverView struct {
	Key       string
	Scheduler string
	Flags     uint32
	Timeout   uint32
	Real      []string
}

func view(servers []DesiredServer) []serverView {
	var out []serverView
	for _, s := range servers {
		v := serverView{Key: s.Key.String(), Scheduler: s.Scheduler, Flags: s.Flags, Timeout: s.Timeout}
		for _, r := range s.RealServers {
			if r.Weight != 1 {
				v.Real = append(v.Real, r.Addr.String()+"!weight")
			}
			v.Real = append(v.Real, r.Addr.String())
		}
		out = append(out, v)
	}
	return out
}

func TestRenderService(t *testing.T) {
	local1, local2 := ep("10.244.1.5", "node-a"), ep("10.244.1.6", "node-a")
	remote := ep("10.244.2.7", "node-b")
	twoNodes := []*endpoints.Endpoint{local1, remote}
	tests := []struct {
		name        string
		cfg         *Config
		port        *endpoints.ServicePort
		eps         []*endpoints.Endpoint
		want        []serverView
		wantAddrs   []string
		wantEntries []string // "SET entry", only for sets listed in entrySets
		entrySets   []string
		wantErr     string
	}{{
		name:      "cluster IP, default rr, unready endpoint left out",
		port:      makePort("ns", "web", "10.96.0.10"),
		eps:       []*endpoints.Endpoint{local1, ep("10.244.2.9", "node-b", unready), remote},
		want:      []serverView{{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080", "10.244.2.7:8080"}}},
		wantAddrs: []string{"10.96.0.10"},
		entrySets: []string{SetClusterIP, SetLoopBack, SetIPVSIPs},
		wantEntries: []string{
			"KUBE-CLUSTER-IP 10.96.0.10,tcp:80",
			"KUBE-IPVS-IPS 10.96.0.10",
			"KUBE-LOOP-BACK 10.244.1.5,tcp:8080,10.244.1.5",
		},
	}, {
		name:      "no endpoints: the virtual server exists with no real servers (refused)",
		port:      makePort("ns", "web", "10.96.0.10"),
		want:      []serverView{{Key: "TCP/10.96.0.10:80", Scheduler: "rr"}},
		wantAddrs: []string{"10.96.0.10"},
	}, {
		name:      "internalTrafficPolicy Local: cluster IP uses local endpoints",
		port:      makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) { p.InternalPolicyLocal = true }),
		eps:       []*endpoints.Endpoint{local1, local2, remote},
		want:      []serverView{{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080", "10.244.1.6:8080"}}},
		wantAddrs: []string{"10.96.0.10"},
	}, {
		name: "node port with externalTrafficPolicy Local: node ports local, cluster IP all",
		port: makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) {
			p.NodePort, p.ExternalPolicyLocal, p.HealthCheckNodePort = 30080, true, 31000
		}),
		eps: twoNodes,
		want: []serverView{
			{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080", "10.244.2.7:8080"}},
			{Key: "TCP/192.168.0.10:30080", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
			{Key: "TCP/192.168.1.10:30080", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
		},
		wantAddrs: []string{"10.96.0.10"},
		entrySets: []string{SetNodePortTCP, SetNodePortLocalTCP, SetHealthCheckNodePort},
		wantEntries: []string{
			"KUBE-HEALTH-CHECK-NODE-PORT 31000",
			"KUBE-NODE-PORT-LOCAL-TCP 30080",
			"KUBE-NODE-PORT-TCP 30080",
		},
	}, {
		name: "externalTrafficPolicy Local without local endpoints falls back to cluster (kubernetes#97081)",
		port: makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) { p.NodePort, p.ExternalPolicyLocal = 30080, true }),
		cfg:  testConfig(func(c *Config) { c.NodeIPs = []netip.Addr{nodeIP} }),
		eps:  []*endpoints.Endpoint{remote},
		want: []serverView{
			{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Real: []string{"10.244.2.7:8080"}},
			{Key: "TCP/192.168.0.10:30080", Scheduler: "rr", Real: []string{"10.244.2.7:8080"}},
		},
		wantAddrs: []string{"10.96.0.10"},
	}, {
		name: "--nodeport-addresses restricts node ports",
		cfg: testConfig(func(c *Config) {
			c.RestrictNodePorts, c.NodePortIPs = true, []netip.Addr{nodeIP2, netip.MustParseAddr("127.0.0.1")}
		}),
		port: makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) { p.NodePort = 30080 }),
		eps:  []*endpoints.Endpoint{local1},
		want: []serverView{
			{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
			{Key: "TCP/192.168.1.10:30080", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
		},
		wantAddrs: []string{"10.96.0.10"},
	}, {
		name:      "ClientIP affinity: persistent with the timeout",
		port:      makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) { p.AffinityTimeoutSeconds = 600 }),
		eps:       []*endpoints.Endpoint{local1},
		want:      []serverView{{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Flags: FlagPersistent, Timeout: 600, Real: []string{"10.244.1.5:8080"}}},
		wantAddrs: []string{"10.96.0.10"},
	}, {
		name:      "--ipvs-scheduler mh gets the source-hash flag",
		cfg:       testConfig(func(c *Config) { c.Scheduler = "mh" }),
		port:      makePort("ns", "web", "10.96.0.10"),
		eps:       []*endpoints.Endpoint{local1},
		want:      []serverView{{Key: "TCP/10.96.0.10:80", Scheduler: "mh", Flags: FlagSourceHash, Real: []string{"10.244.1.5:8080"}}},
		wantAddrs: []string{"10.96.0.10"},
	}, {
		name:      "annotation overrides the default scheduler",
		cfg:       testConfig(func(c *Config) { c.Scheduler = "lc" }),
		port:      makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) { p.Scheduler = "sh" }),
		eps:       []*endpoints.Endpoint{local1},
		want:      []serverView{{Key: "TCP/10.96.0.10:80", Scheduler: "sh", Real: []string{"10.244.1.5:8080"}}},
		wantAddrs: []string{"10.96.0.10"},
	}, {
		name:      "invalid annotation falls back to the default, with an error",
		cfg:       testConfig(func(c *Config) { c.Scheduler = "lc" }),
		port:      makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) { p.Scheduler = "fastest" }),
		eps:       []*endpoints.Endpoint{local1},
		want:      []serverView{{Key: "TCP/10.96.0.10:80", Scheduler: "lc", Real: []string{"10.244.1.5:8080"}}},
		wantAddrs: []string{"10.96.0.10"},
		wantErr:   `ns/web:p80: annotation switchyard.io/ipvs-scheduler="fastest" is not a scheduler`,
	}, {
		name: "external IPs: bound unless the node has it (kubernetes#93175)",
		port: makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) {
			p.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.5"), nodeIP}
		}),
		eps: []*endpoints.Endpoint{local1},
		want: []serverView{
			{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
			{Key: "TCP/192.168.0.10:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
			{Key: "TCP/203.0.113.5:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
		},
		wantAddrs: []string{"10.96.0.10", "203.0.113.5"},
		entrySets: []string{SetExternalIP, SetExternalIPLocal},
		wantEntries: []string{
			"KUBE-EXTERNAL-IP 192.168.0.10,tcp:80",
			"KUBE-EXTERNAL-IP 203.0.113.5,tcp:80",
		},
	}, {
		name: "load balancer with source ranges that admit the node",
		port: makePort("ns", "web", "10.96.0.10", func(p *endpoints.ServicePort) {
			p.LoadBalancerVIPs = []netip.Addr{netip.MustParseAddr("198.51.100.7")}
			p.LoadBalancerSourceRanges = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("172.16.0.0/12")}
			p.ExternalPolicyLocal = true
		}),
		eps: []*endpoints.Endpoint{local1, remote},
		want: []serverView{
			{Key: "TCP/10.96.0.10:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080", "10.244.2.7:8080"}},
			{Key: "TCP/198.51.100.7:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
		},
		wantAddrs: []string{"10.96.0.10", "198.51.100.7"},
		entrySets: []string{SetLoadBalancer, SetLoadBalancerLocal, SetLoadBalancerFW, SetLoadBalancerSourceCIDR, SetLoadBalancerSourceIP},
		wantEntries: []string{
			"KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-LOCAL 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,172.16.0.0/12",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,192.168.0.0/24",
			"KUBE-LOAD-BALANCER-SOURCE-IP 198.51.100.7,tcp:80,198.51.100.7",
		},
	}, {
		name: "SCTP node port: hash:ip,port entries per node IP",
		cfg:  testConfig(func(c *Config) { c.NodeIPs = []netip.Addr{nodeIP} }),
		port: makePort("ns", "sig", "10.96.0.11", func(p *endpoints.ServicePort) {
			p.Name.Protocol, p.NodePort = v1.ProtocolSCTP, 30999
		}),
		eps: []*endpoints.Endpoint{local1},
		want: []serverView{
			{Key: "SCTP/10.96.0.11:80", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
			{Key: "SCTP/192.168.0.10:30999", Scheduler: "rr", Real: []string{"10.244.1.5:8080"}},
		},
		wantAddrs:   []string{"10.96.0.11"},
		entrySets:   []string{SetNodePortSCTP, SetNodePortTCP},
		wantEntries: []string{"KUBE-NODE-PORT-SCTP-HASH 192.168.0.10,sctp:30999"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg == nil {
				cfg = testConfig()
			}
			f, err := RenderService(tc.port, sortedEndpoints(tc.eps...), cfg)
			if tc.wantErr == "" && err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, view(f.Servers)); diff != "" {
				t.Errorf("virtual servers (-want +got):\n%s", diff)
			}
			var addrs []string
			for _, a := range f.Addresses {
				addrs = append(addrs, a.String())
			}
			if diff := cmp.Diff(tc.wantAddrs, addrs); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			if tc.entrySets != nil {
				var entries []string
				for _, e := range f.Entries {
					for _, s := range tc.entrySets {
						if e.Set == s {
							entries = append(entries, e.Set+" "+e.Entry)
						}
					}
				}
				if diff := cmp.Diff(tc.wantEntries, entries); diff != "" {
					t.Errorf("set entries (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRenderServiceOtherFamily(t *testing.T) {
	f, err := RenderService(makePort("ns", "web", "fd00::10"), nil, testConfig())
	if f != nil || err != nil {
		t.Errorf("an IPv6-only service in the IPv4 render: got %+v, %v; want nothing", f, err)
	}
}

func TestRenderConflictAndDeterminism(t *testing.T) {
	shared := func(p *endpoints.ServicePort) { p.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.5")} }
	a := makePort("ns", "a", "10.96.0.1", shared)
	b := makePort("ns", "b", "10.96.0.2", shared)
	snap := snapshot(1, map[*endpoints.ServicePort][]*endpoints.Endpoint{
		a: {ep("10.244.1.1", "node-a")},
		b: {ep("10.244.1.2", "node-a")},
	})
	st := Render(snap, testConfig())
	owner := st.Owners[key(v1.ProtocolTCP, "203.0.113.5:80")]
	if owner != a.Name {
		t.Errorf("203.0.113.5:80 owned by %v, want the first in name order, %v", owner, a.Name)
	}
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Error(), "ns/b:p80: virtual server TCP/203.0.113.5:80 is already used by ns/a:p80") {
		t.Errorf("errors = %v", st.Errors)
	}
	if diff := cmp.Diff([]string{"203.0.113.5"}, st.Sets[SetIPVSIPs][2:]); diff != "" {
		t.Errorf("KUBE-IPVS-IPS (-want +got):\n%s", diff)
	}
	again := Render(snap, testConfig())
	if diff := cmp.Diff(st, again, cmpAddrs, cmpopts.IgnoreFields(State{}, "Errors")); diff != "" {
		t.Errorf("Render is not deterministic:\n%s", diff)
	}
}

// TestRenderRulesLoad feeds the companion payload to the strict in-memory iptables,
// which checks syntax, jump targets and target placement.
func TestRenderRulesLoad(t *testing.T) {
	for _, cfg := range []*Config{
		testConfig(),
		testConfig(func(c *Config) { c.MasqueradeAll = true }),
		testConfig(func(c *Config) { c.ClusterCIDR = netip.Prefix{} }),
		{FamilyConfig: node.FamilyConfig{Family: v1.IPv6Protocol, ClusterCIDR: netip.MustParsePrefix("fd00:244::/56")}},
	} {
		rs := ruleset.New(ruleset.IPv4)
		if cfg.Family == v1.IPv6Protocol {
			rs = ruleset.New(ruleset.IPv6)
		}
		payload := RenderRules(cfg)
		if err := rs.Apply(payload, true); err != nil {
			t.Errorf("%s payload does not load: %v\n%s", cfg.Family, err, payload)
		}
		if cfg.Family == v1.IPv6Protocol && !strings.Contains(string(payload), "--match-set KUBE-6-CLUSTER-IP dst,dst ! -s fd00:244::/56") {
			t.Errorf("IPv6 payload must use the KUBE-6- sets:\n%s", payload)
		}
	}
}

func TestSetNames(t *testing.T) {
	for _, s := range SetSpecs {
		for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
			if n := SetName(s.Name, fam); len(n) > 31 {
				t.Errorf("%s: %q longer than 31", fam, n)
			}
		}
	}
	if got := SetName(SetLoadBalancerSourceCIDR, v1.IPv6Protocol); got != "KUBE-6-LOAD-BALANCER-SOURCE-CID" {
		t.Errorf("IPv6 name = %q, want kube-proxy's truncation", got)
	}
}
