package endpoints

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TriggerTimeAnnotation is set by the EndpointSlice controller to the time of the change
// that caused the slice's last update; network programming latency is measured from it.
const TriggerTimeAnnotation = v1.EndpointsLastChangeTriggerTime

// slicePortKey names a port inside an EndpointSlice: its name and protocol, which is how
// kube-proxy matches slice ports to service ports.
type slicePortKey struct {
	name     string
	protocol v1.Protocol
}

// sliceInfo is the part of one EndpointSlice that rules depend on.
type sliceInfo struct {
	name      string
	endpoints map[slicePortKey][]*Endpoint
}

// ServiceKeyOfSlice returns the Service an EndpointSlice belongs to, from its
// kubernetes.io/service-name label.
func ServiceKeyOfSlice(slice *discovery.EndpointSlice) (types.NamespacedName, error) {
	name := slice.Labels[discovery.LabelServiceName]
	if name == "" {
		return types.NamespacedName{}, invalid(ReasonNoServiceLabel, fmt.Errorf("endpointslice %s/%s: no %s label, so it belongs to no service",
			slice.Namespace, slice.Name, discovery.LabelServiceName))
	}
	return types.NamespacedName{Namespace: slice.Namespace, Name: name}, nil
}

// convertSlice extracts the endpoints of every port of an EndpointSlice. FQDN slices
// carry no addresses kube-proxy can program and yield nothing. Invalid addresses are
// skipped with an error naming the slice.
func convertSlice(slice *discovery.EndpointSlice) (*sliceInfo, error) {
	info := &sliceInfo{name: slice.Name, endpoints: map[slicePortKey][]*Endpoint{}}
	if slice.AddressType != discovery.AddressTypeIPv4 && slice.AddressType != discovery.AddressTypeIPv6 {
		return info, nil
	}
	var errs []error
	var parsed []*Endpoint // the endpoints without ports, shared by every port below
	for i := range slice.Endpoints {
		ep := &slice.Endpoints[i]
		if len(ep.Addresses) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(ep.Addresses[0])
		if err != nil {
			errs = append(errs, invalid(ReasonInvalidEndpointAddress, fmt.Errorf("endpointslice %s/%s: endpoint address %q: %w", slice.Namespace, slice.Name, ep.Addresses[0], err)))
			continue
		}
		if ip.Zone() != "" {
			// The API refuses it; written into a rule it would make
			// ip6tables-restore refuse the whole payload.
			errs = append(errs, invalid(ReasonInvalidEndpointAddress, fmt.Errorf("endpointslice %s/%s: endpoint address %q: zoned address not allowed", slice.Namespace, slice.Name, ep.Addresses[0])))
			continue
		}
		ip = ip.Unmap()
		if (slice.AddressType == discovery.AddressTypeIPv4) != ip.Is4() {
			errs = append(errs, invalid(ReasonEndpointFamilyMismatch, fmt.Errorf("endpointslice %s/%s: address %s does not match addressType %s", slice.Namespace, slice.Name, ip, slice.AddressType)))
			continue
		}
		ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
		e := &Endpoint{
			IP:          ip,
			Ready:       ready,
			Serving:     ep.Conditions.Serving == nil || *ep.Conditions.Serving,
			Terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
		}
		if ep.NodeName != nil {
			e.NodeName = *ep.NodeName
		}
		if ep.Zone != nil {
			e.Zone = *ep.Zone
		}
		if ep.Hints != nil {
			for _, z := range ep.Hints.ForZones {
				e.ZoneHints = append(e.ZoneHints, z.Name)
			}
			for _, n := range ep.Hints.ForNodes {
				e.NodeHints = append(e.NodeHints, n.Name)
			}
			slices.Sort(e.ZoneHints)
			slices.Sort(e.NodeHints)
		}
		parsed = append(parsed, e)
	}
	for _, port := range slice.Ports {
		if port.Port == nil || *port.Port < 1 || *port.Port > 65535 {
			continue
		}
		key := slicePortKey{protocol: v1.ProtocolTCP}
		if port.Name != nil {
			key.name = *port.Name
		}
		if port.Protocol != nil {
			key.protocol = *port.Protocol
		}
		eps := make([]*Endpoint, len(parsed))
		for i, e := range parsed {
			withPort := *e
			withPort.Port = *port.Port
			eps[i] = &withPort
		}
		info.endpoints[key] = eps
	}
	return info, errors.Join(errs...)
}

// mergeEndpoints merges the endpoints of one service port across all of a service's
// slices, de-duplicated by "ip:port" and sorted by that text.
//
// The same address can appear twice while an endpoint moves between slices, or when a
// pod IP is reused before the old pod is gone. Like kube-proxy, prefer a copy that is not
// terminating; between equals, prefer the copy on this node. Slices are visited in name
// order so the result never depends on event order.
func mergeEndpoints(slices []*sliceInfo, key slicePortKey, nodeName string) []*Endpoint {
	var merged map[netip.AddrPort]*Endpoint
	for _, s := range slices {
		for _, ep := range s.endpoints[key] {
			if merged == nil {
				merged = map[netip.AddrPort]*Endpoint{}
			}
			ap := ep.AddrPort()
			old, exists := merged[ap]
			switch {
			case !exists:
			case old.Terminating && !ep.Terminating:
			case old.Terminating == ep.Terminating && old.NodeName != nodeName && ep.NodeName == nodeName:
			default:
				continue
			}
			merged[ap] = ep
		}
	}
	if len(merged) == 0 {
		return nil
	}
	return sortedByText(merged)
}

// sortedByText returns the endpoints ordered by their "ip:port" text, as kube-proxy's
// endpointslicecache orders them (byEndpoint compares Endpoint.String()). The order
// decides the rule order of KUBE-SVC/KUBE-SVL chains and so which endpoint session
// affinity tries first: "10.0.0.10:80" sorts before "10.0.0.9:80", unlike a numeric
// sort, and matching it lets Switchyard adopt kube-proxy's chains without rewriting
// them.
func sortedByText(merged map[netip.AddrPort]*Endpoint) []*Endpoint {
	out := make([]*Endpoint, 0, len(merged))
	for _, ep := range merged {
		out = append(out, ep)
	}
	// The texts are compared in stack buffers rather than kept as one string per
	// endpoint: this runs for every changed service in every snapshot. The longest
	// text, "[ipv6%zone]:65535", fits in 64 bytes for any zone of reasonable length;
	// AppendTo grows the buffer (on the heap) for a longer one.
	slices.SortFunc(out, func(a, b *Endpoint) int {
		var aText, bText [64]byte
		return bytes.Compare(a.AddrPort().AppendTo(aText[:0]), b.AddrPort().AppendTo(bText[:0]))
	})
	return out
}
