package iptables

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	nfaccttest "github.com/switchyard-io/switchyard/pkg/nfacct/testing"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// brokenAcct is an nfacct.Interface of a kernel without nfnetlink_acct.
type brokenAcct struct{}

func (brokenAcct) Ensure(string) error { return nfacct.ErrNotSupported }
func (brokenAcct) Get(string) (nfacct.Counter, error) {
	return nfacct.Counter{}, nfacct.ErrNotSupported
}

// TestNFAcctRules checks kube-proxy v1.37's counting rules: with the counters created,
// the INVALID drop rule counts into ct_state_invalid_dropped_pkts, and each node port
// gets a 127.0.0.0/8 rule counting into localhost_nps_accepted_pkts in front of its
// ordinary rule (localhost node ports on); without them, the rules are written
// uncounted. mutation-checked: rendering -m nfacct whenever cfg.NFAcct is set (not
// only when Ensure succeeded) fails "kernel without nfacct".
func TestNFAcctRules(t *testing.T) {
	svc := makeService("ns", "np", "172.30.0.12", withNodePort(30012))
	slice := makeSlice("ns", "np", "np-1", 80, ep{IP: "10.180.0.2", Node: testNode})
	name := endpoints.ServicePortName{NamespacedName: nsName("ns", "np"), Port: "p80", Protocol: v1.ProtocolTCP}
	ext := ExternalChain(name)
	tests := []struct {
		name          string
		acct          nfacct.Interface
		localhost     bool
		wantForward   string
		wantNodePorts []string
	}{
		{
			name: "counters, localhost node ports on", acct: nfaccttest.NewFake(), localhost: true,
			wantForward: "-m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP",
			wantNodePorts: []string{
				"-m comment --comment ns/np:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 30012 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j " + ext,
				"-m comment --comment ns/np:p80 -m tcp -p tcp --dport 30012 -j " + ext,
			},
		},
		{
			name: "counters, localhost node ports off", acct: nfaccttest.NewFake(),
			wantForward:   "-m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP",
			wantNodePorts: []string{"-m comment --comment ns/np:p80 -m tcp -p tcp --dport 30012 -j " + ext},
		},
		{
			name: "kernel without nfacct", acct: brokenAcct{}, localhost: true,
			wantForward:   "-m conntrack --ctstate INVALID -j DROP",
			wantNodePorts: []string{"-m comment --comment ns/np:p80 -m tcp -p tcp --dport 30012 -j " + ext},
		},
		{
			name: "no nfacct configured", localhost: true,
			wantForward:   "-m conntrack --ctstate INVALID -j DROP",
			wantNodePorts: []string{"-m comment --comment ns/np:p80 -m tcp -p tcp --dport 30012 -j " + ext},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.NFAcct = tt.acct
			cfg.LocalhostNodePorts = tt.localhost
			cfg.NodePortsOnLoopback = true
			fake := xtablestest.NewFake(ruleset.IPv4)
			p, err := NewProxier(cfg, fake, time.Hour, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Sync(context.Background(), snapshotOf(t, svc, slice)); err != nil {
				t.Fatalf("sync: %v", err)
			}
			rs := fake.Ruleset()
			var forward, nodePorts []string
			for _, r := range rs.Chain("filter", ChainForward).Rules {
				forward = append(forward, r.String())
			}
			for _, r := range rs.Chain("nat", ChainNodePorts).Rules {
				nodePorts = append(nodePorts, r.String())
			}
			if len(forward) == 0 || forward[0] != tt.wantForward {
				t.Errorf("first KUBE-FORWARD rule = %q, want %q", strings.Join(forward, "\n"), tt.wantForward)
			}
			if diff := cmp.Diff(tt.wantNodePorts, nodePorts); diff != "" {
				t.Errorf("KUBE-NODEPORTS (-want +got):\n%s", diff)
			}
			if tt.localhost {
				// The counting rule must not change where the packet goes.
				n := tracer.Node{LocalAddrs: []netip.Addr{netip.MustParseAddr(nodeIPv4), netip.MustParseAddr("127.0.0.1")}}
				runPacketCases(t, rs, n, []packetCase{
					{name: "127.0.0.1 node port", src: "127.0.0.1", dst: "127.0.0.1", port: 30012, origin: tracer.FromLocalProcess,
						wantEndpoints: []string{"10.180.0.2:80"}, wantMasq: []string{"10.180.0.2:80"}},
				})
			}
			if fa, ok := tt.acct.(*nfaccttest.Fake); ok {
				for _, c := range []string{nfacct.CounterInvalidDropped, nfacct.CounterLocalhostNodePorts} {
					if _, err := fa.Get(c); errors.Is(err, nfacct.ErrNotFound) {
						t.Errorf("counter %s was not created", c)
					}
				}
			}
		})
	}
}
