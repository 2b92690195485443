package explain

import (
	"net/netip"

	discovery "k8s.io/api/discovery/v1"
)

// Owner says what runs behind an endpoint address.
type Owner struct {
	// Pod is "namespace/name" of the pod, or "" when unknown.
	Pod string
	// Node is the node the endpoint runs on, or "" when unknown.
	Node string
}

// OwnersFromSlices collects, from EndpointSlices, the pod (targetRef) and node
// behind each endpoint address, so an explanation can name them.
func OwnersFromSlices(slices []*discovery.EndpointSlice) map[netip.Addr]Owner {
	owners := map[netip.Addr]Owner{}
	for _, slice := range slices {
		for _, ep := range slice.Endpoints {
			var owner Owner
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
				ns := ref.Namespace
				if ns == "" {
					ns = slice.Namespace
				}
				owner.Pod = ns + "/" + ref.Name
			}
			if ep.NodeName != nil {
				owner.Node = *ep.NodeName
			}
			if owner == (Owner{}) {
				continue
			}
			for _, a := range ep.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					owners[ip.Unmap()] = owner
				}
			}
		}
	}
	return owners
}
