package ipvs_test

// IP plan: proxier_test.go's, plus the node's second address 192.168.0.11.

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

// TestNodeIPChangeMovesNodePorts: when the Node's address changes, the controller
// builds a new Proxier for the new address (pkg/controller nodeHandler), whose first
// sync is full. The node port's virtual server must move: the one on the old address
// is Switchyard's (its port is in KUBE-NODE-PORT-TCP) and goes, as kube-proxy's IPVS
// mode removes every virtual server it no longer wants. Found by test/ipvs
// testGuestNodeAddress, where the old one stayed.
// mutation-checked: owning a node port only on the current node addresses (pkg/ipvs
// ownership.owns, the TCP/UDP case requiring k.Addr in NodeIPs) fails here, leaving
// "-A -t 192.168.0.10:30080".
func TestNodeIPChangeMovesNodePorts(t *testing.T) {
	b := newBed()
	w := newWorld()
	w.set(port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.NodePort = 30080 }), ep("10.244.2.1"))
	// Someone else's virtual server on the node's address, on a port that is not a
	// node port: left alone.
	foreign := ipvs.VirtualServer{Key: ipvs.Key{Addr: nodeIP, Port: 8443, Protocol: "TCP"}, Scheduler: "wlc"}
	if err := b.ipvs.AddVirtualServer(foreign); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b.proxier(t), w.snapshot(), true)

	newIP := netip.MustParseAddr("192.168.0.11")
	rebuilt := b.proxier(t, func(c *ipvs.Config) { c.NodeIPs = []netip.Addr{newIP} })
	mustSync(t, rebuilt, w.snapshot(), true)
	want := "-A -t 10.96.0.10:80 -s rr\n" +
		"-a -t 10.96.0.10:80 -r 10.244.2.1:8080 -m -w 1\n" +
		"-A -t 192.168.0.10:8443 -s wlc\n" +
		"-A -t 192.168.0.11:30080 -s rr\n" +
		"-a -t 192.168.0.11:30080 -r 10.244.2.1:8080 -m -w 1\n"
	if diff := cmp.Diff(want, b.ipvs.Dump()); diff != "" {
		t.Errorf("after the node's address changed (-want +got):\n%s", diff)
	}
}
