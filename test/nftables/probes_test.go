package nftables

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/nftables/nftmodel"
	"github.com/switchyard-io/switchyard/test/testbed"
)

// client is where a probe starts, with what the model needs to know of it.
type client struct {
	name   string
	client testbed.Client
	// src4 and src6 are the source addresses its packets carry.
	src4, src6 string
	origin     nftmodel.Origin
	iface      string
}

func (c client) src(dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return netip.MustParseAddr(c.src4)
	}
	return netip.MustParseAddr(c.src6)
}

// probe is one kind of new connection: from a client to an address.
type probe struct {
	from  client
	proto string
	addr  string
}

func (p probe) String() string { return fmt.Sprintf("%s %s from %s", p.proto, p.addr, p.from.name) }

// clients returns the world's clients as seen from node: the node itself, a
// pod on it that is no endpoint, web-1 (to reach itself: hairpin) and the
// outside client.
func (w *world) clients(node *testbed.Node, podClient *testbed.Pod) map[string]client {
	return map[string]client{
		"node":    {"node", node, node.IP, node.IPv6, nftmodel.FromLocalProcess, ""},
		"pod":     {"pod", podClient, podClient.IP, podClient.IPv6, nftmodel.FromPodOrExternal, "sy-br"},
		"web-1":   {"web-1", w.web1, w.web1.IP, w.web1.IPv6, nftmodel.FromPodOrExternal, "sy-br"},
		"outside": {"outside", w.cluster.Outside, w.cluster.Outside.IP, w.cluster.Outside.IPv6, nftmodel.FromPodOrExternal, "sy-outside"},
	}
}

// probes lists the connections every test of the package makes to node-1's
// proxy: every Service kind, from every kind of client.
func (w *world) probes(clients map[string]client) []probe {
	n := w.node1
	hp := func(ip string, port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }
	pod, node, outside, web1 := clients["pod"], clients["node"], clients["outside"], clients["web-1"]
	return []probe{
		{pod, "tcp", "10.96.1.1:80"},
		{pod, "udp", "10.96.1.1:53"},
		{pod, "tcp", "[fd00:96::101]:80"},
		{web1, "tcp", "10.96.1.1:80"},
		{node, "tcp", "10.96.1.1:80"},
		{node, "tcp", "[fd00:96::101]:80"},
		{outside, "tcp", "10.96.1.1:80"},
		{pod, "tcp", "10.96.1.1:81"},
		{node, "tcp", "10.96.1.1:81"},
		{pod, "tcp", "10.96.1.200:80"},
		{node, "tcp", "10.96.1.2:8080"},
		{outside, "tcp", hp(n.IP, 30080)},
		{outside, "tcp", hp(n.IPv6, 30080)},
		{outside, "tcp", hp(n.OutsideIP, 30080)},
		{pod, "tcp", hp(n.IP, 30080)},
		{outside, "tcp", hp(n.IP, 30081)},
		{outside, "tcp", hp(n.IP, 30082)},
		{pod, "tcp", hp(n.IP, 30082)},
		{node, "tcp", hp(n.IP, 30082)},
		{outside, "tcp", lbIP + ":80"},
		{outside, "tcp", lbDeniedIP + ":80"},
		{outside, "tcp", lbLocalIP + ":80"},
		{pod, "tcp", lbLocalIP + ":80"},
		{outside, "tcp", externalIP + ":80"},
		{node, "tcp", externalIP + ":80"},
		{pod, "tcp", "10.96.1.8:80"},
		{pod, "tcp", "10.96.1.9:80"},
		{pod, "tcp", "10.96.1.10:80"},
		{node, "tcp", "10.96.1.10:80"},
		{pod, "tcp", "[fd00:96::10a]:80"},
		{pod, "udp", "10.96.1.11:53"},
		{outside, "tcp", hp(n.IP, 30085)},
	}
}

// observe makes real connections for p and describes what happened in the
// form predict uses: "refused", "dropped", or the pods that answered with
// the source address each saw ("web-1<-10.244.1.1 web-2<-10.250.0.11").
// A failure is judged on one connection: the kernel rate-limits the ICMP
// errors a reject sends (per destination, a burst of 6, then one per
// 250 ms for an IPv6 /64), so a burst of refused connections reads as
// timeouts after the first few.
func observe(ctx context.Context, p probe) string {
	first, err := testbed.Dial(ctx, p.from.client, p.proto, p.addr)
	if err != nil {
		return errorKind(err)
	}
	counts, err := testbed.Distribution(ctx, p.from.client, p.proto, p.addr, 24)
	if err != nil {
		return fmt.Sprintf("mixed: answered by %s and %v, then %v", first.Pod, counts, err)
	}
	counts[first.Pod]++
	sources := map[string]string{first.Pod: first.SourceIP()}
	for attempt := 0; attempt < 40 && len(sources) < len(counts); attempt++ {
		reply, err := testbed.Dial(ctx, p.from.client, p.proto, p.addr)
		if err != nil {
			return fmt.Sprintf("mixed: answered by %v, then %v", counts, err)
		}
		if _, ok := counts[reply.Pod]; !ok {
			return fmt.Sprintf("mixed: answered by %v, then by %s", counts, reply.Pod)
		}
		sources[reply.Pod] = reply.SourceIP()
	}
	var parts []string
	for pod := range counts {
		source, ok := sources[pod]
		if !ok {
			source = "?"
		}
		parts = append(parts, pod+"<-"+source)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, testbed.ErrRefused):
		return "refused"
	case errors.Is(err, testbed.ErrTimeout), errors.Is(err, testbed.ErrFiltered):
		return "dropped"
	}
	return "failed: " + err.Error()
}

// predict traces p through the node's tables with the model and says what
// observe should see. A client that always comes from one address is
// either new to an affinity set or known to it: affinityHit names the set
// that knows it ("" for none).
func (w *world) predict(node *testbed.Node, tables map[string]*nftmodel.Ruleset, p probe, affinityHit string) (string, nftmodel.Result, error) {
	dst, err := netip.ParseAddrPort(p.addr)
	if err != nil {
		return "", nftmodel.Result{}, err
	}
	family := "ip"
	if dst.Addr().Is6() {
		family = "ip6"
	}
	pkt := nftmodel.Packet{Src: p.from.src(dst.Addr()), Dst: dst.Addr(), Proto: p.proto, SrcPort: 40000,
		DstPort: int(dst.Port()), Origin: p.from.origin, InIface: p.from.iface}
	result, err := nftmodel.Trace(tables[family], nodeModel(node), pkt, nftmodel.Options{AffinityHit: affinityHit})
	if err != nil {
		return "", result, err
	}
	byIP := w.podsByIP()
	var parts []string
	for _, o := range result.Outcomes {
		switch {
		case o.Fate == nftmodel.Reject:
			parts = append(parts, "refused")
		case o.Fate == nftmodel.Drop:
			parts = append(parts, "dropped")
		case o.Endpoint == "" && o.Local:
			// Delivered to the node itself, where nothing listens.
			parts = append(parts, "refused")
		case o.Endpoint == "":
			parts = append(parts, "not proxied")
		default:
			pod := byIP[o.Dst.Addr()]
			if pod == nil {
				parts = append(parts, "to "+o.Endpoint+" (no pod)")
				continue
			}
			source := pkt.Src.String()
			if o.Masquerade {
				source = egressAddr(node, pod, dst.Addr().Is6())
			}
			parts = append(parts, pod.Name+"<-"+source)
		}
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), " "), result, nil
}

// nodeModel is what the model needs to know of node: its addresses.
func nodeModel(node *testbed.Node) nftmodel.Node {
	var local []netip.Addr
	for _, a := range []string{node.IP, node.IPv6, node.OutsideIP, node.OutsideIPv6,
		fmt.Sprintf("10.244.%d.1", node.Index), fmt.Sprintf("fd00:244:%d::1", node.Index)} {
		local = append(local, netip.MustParseAddr(a))
	}
	return nftmodel.Node{LocalAddrs: local}
}

// egressAddr is the source a masquerade on node gives a packet to pod: the
// bridge's address for its own pods, the cluster-segment one for others.
func egressAddr(node *testbed.Node, pod *testbed.Pod, v6 bool) string {
	if pod.Node == node {
		if v6 {
			return fmt.Sprintf("fd00:244:%d::1", node.Index)
		}
		return fmt.Sprintf("10.244.%d.1", node.Index)
	}
	if v6 {
		return node.IPv6
	}
	return node.IP
}
