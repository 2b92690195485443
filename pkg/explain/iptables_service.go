package explain

import (
	"net/netip"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/iptables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	"github.com/switchyard-io/switchyard/pkg/xtables/tracer"
)

// kube-proxy's rule comments end with these words after the "ns/name:port"
// of the Service port they serve (pkg/iptables/fragment.go writes the same).
const (
	suffixClusterIP      = " cluster IP"
	suffixExternalIP     = " external IP"
	suffixLoadBalancerIP = " loadbalancer IP"
	suffixNoEndpoints    = " has no endpoints"
	suffixNoLocal        = " has no local endpoints"
	infixNotAccepted     = " traffic not accepted by "
)

// parseServicePortName splits "ns/name:port" (or "ns/name"); ok is false for
// anything that is not one word with a slash, such as kube-proxy's own
// "kubernetes service portals".
func parseServicePortName(s string) (Service, bool) {
	if s == "" || strings.ContainsAny(s, " \t") {
		return Service{}, false
	}
	ns, rest, ok := strings.Cut(s, "/")
	if !ok || ns == "" || rest == "" {
		return Service{}, false
	}
	name, port, _ := strings.Cut(rest, ":")
	return Service{Namespace: ns, Name: name, Port: port}, true
}

// serviceOfHit names the Service port a matched rule serves, and which of its
// addresses the packet used, from the rule's chain and comment. ok is false
// for rules that serve no particular Service port, and for the health-check
// node port (which is not the Service's own port).
func (x *iptablesExplainer) serviceOfHit(h tracer.Hit) (Service, bool) {
	if h.Rule == nil {
		return Service{}, false
	}
	comment := h.Rule.Comment()
	var name string
	kind := AddressKind("")
	switch {
	case strings.HasSuffix(comment, suffixClusterIP):
		name, kind = strings.TrimSuffix(comment, suffixClusterIP), ClusterIP
	case strings.HasSuffix(comment, suffixExternalIP):
		name, kind = strings.TrimSuffix(comment, suffixExternalIP), ExternalIP
	case strings.HasSuffix(comment, suffixLoadBalancerIP):
		name, kind = strings.TrimSuffix(comment, suffixLoadBalancerIP), LoadBalancerIP
	case strings.Contains(comment, infixNotAccepted):
		name, _, _ = strings.Cut(comment, infixNotAccepted)
		kind = LoadBalancerIP
	case strings.HasSuffix(comment, suffixNoEndpoints):
		name, kind = strings.TrimSuffix(comment, suffixNoEndpoints), x.kindOfRejected(h)
	case strings.HasSuffix(comment, suffixNoLocal):
		name, kind = strings.TrimSuffix(comment, suffixNoLocal), x.kindOfRejected(h)
	case h.Table == ruleset.TableNAT && h.Chain == iptables.ChainNodePorts:
		name, kind = comment, NodePort
	default:
		return Service{}, false
	}
	svc, ok := parseServicePortName(name)
	svc.Kind = kind
	return svc, ok
}

// kindOfRejected works out which address of a Service without (local)
// endpoints the packet was sent to: the filter rule that rejects it is the
// only rule left, and its chain only tells cluster IPs from the rest.
func (x *iptablesExplainer) kindOfRejected(h tracer.Hit) AddressKind {
	if h.Chain == iptables.ChainServices {
		return ClusterIP
	}
	for _, m := range h.Rule.Matches {
		if at, ok := m.(*ruleset.AddrTypeMatch); ok && at.DstType == "LOCAL" {
			return NodePort
		}
	}
	if kind, ok := x.kindFromSnapshot(); ok {
		return kind
	}
	return ExternalIP
}

// kindFromSnapshot finds the packet's destination among the Services'
// addresses, when the objects are known.
func (x *iptablesExplainer) kindFromSnapshot() (AddressKind, bool) {
	if x.in.Snapshot == nil {
		return "", false
	}
	dst := x.pkt.Dst.Addr()
	for _, name := range x.in.Snapshot.SortedServices() {
		sp := x.in.Snapshot.Services[name]
		if int(sp.Port) == int(x.pkt.Dst.Port()) {
			switch {
			case containsAddr(sp.LoadBalancerVIPs, dst):
				return LoadBalancerIP, true
			case containsAddr(sp.ExternalIPs, dst):
				return ExternalIP, true
			}
		}
	}
	return "", false
}

// clusterIPOwners names the Services whose cluster IP is the packet's
// destination, for "unknown port on a cluster IP": from the objects when
// given, else from the rules that mention the address.
func (x *iptablesExplainer) clusterIPOwners() []string {
	dst := x.pkt.Dst.Addr()
	seen := map[string]bool{}
	var names []string
	add := func(svc Service) {
		n := svc.Namespace + "/" + svc.Name
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if x.in.Snapshot != nil {
		for _, name := range x.in.Snapshot.SortedServices() {
			if containsAddr(x.in.Snapshot.Services[name].ClusterIPs, dst) {
				add(Service{Namespace: name.Namespace, Name: name.Name})
			}
		}
		return names
	}
	for _, table := range []string{ruleset.TableNAT, ruleset.TableFilter} {
		chain := x.in.Rules.Chain(table, iptables.ChainServices)
		if chain == nil {
			continue
		}
		for _, rule := range chain.Rules {
			if d := rule.Destination; d == nil || d.Negate || d.Prefix != netip.PrefixFrom(dst, dst.BitLen()) {
				continue
			}
			comment := rule.Comment()
			for _, suffix := range []string{suffixClusterIP, suffixNoEndpoints, suffixNoLocal} {
				if svc, ok := parseServicePortName(strings.TrimSuffix(comment, suffix)); ok && strings.HasSuffix(comment, suffix) {
					add(svc)
				}
			}
		}
	}
	return names
}

func containsAddr(addrs []netip.Addr, addr netip.Addr) bool {
	for _, a := range addrs {
		if a == addr {
			return true
		}
	}
	return false
}
