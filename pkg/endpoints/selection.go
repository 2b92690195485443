package endpoints

import "slices"

// NodeTopology is what endpoint selection needs to know about this node.
type NodeTopology struct {
	// Name is the node's name, as in EndpointSlice endpoints' nodeName.
	Name string
	// Zone is the node's topology.kubernetes.io/zone label, or "".
	Zone string
}

// Selection is the outcome of choosing endpoints for one service port on one node.
type Selection struct {
	// Cluster holds the endpoints for Cluster traffic policy (topology applied), or nil
	// if the port never uses cluster-wide endpoints.
	Cluster []*Endpoint
	// Local holds this node's endpoints for Local traffic policy, or nil if the port
	// never uses them.
	Local []*Endpoint
	// Reachable is the union of Cluster and Local: every endpoint a packet entering on
	// this node can reach, sorted. Each needs its own endpoint chain or real server.
	Reachable []*Endpoint
	// HasAny reports whether the service has a usable endpoint anywhere in the cluster,
	// even if none is reachable from this node; it decides REJECT (none anywhere)
	// versus DROP (none local).
	HasAny bool
}

// Select chooses the endpoints of one service port for a node, with kube-proxy's rules:
// ready endpoints first; if there are none in a scope, that scope falls back to
// serving-and-terminating endpoints (KEP-1669), decided separately for the cluster-wide
// and the node-local set. Topology hints narrow the cluster-wide set: node hints
// (trafficDistribution PreferSameNode) when every ready endpoint has one and one names
// this node, otherwise zone hints when every ready endpoint has one and one names this
// node's zone, otherwise no narrowing.
//
// eps must be sorted (as Snapshot keeps them); Select is pure and allocates only the
// returned slices.
func Select(eps []*Endpoint, port *ServicePort, node NodeTopology) Selection {
	var sel Selection
	if len(eps) == 0 {
		return sel
	}
	mode := topologyNone
	if port.UsesClusterEndpoints() {
		mode = topologyMode(eps, node)
		sel.Cluster = filter(eps, func(ep *Endpoint) bool { return ep.Ready && mode.allows(ep, node) })
		if len(sel.Cluster) == 0 {
			sel.Cluster = filter(eps, func(ep *Endpoint) bool { return ep.Serving && ep.Terminating })
		}
		sel.HasAny = len(sel.Cluster) > 0
	}
	if !port.UsesLocalEndpoints() {
		sel.Reachable = sel.Cluster
		return sel
	}

	var localReady, localServingTerminating bool
	for _, ep := range eps {
		local := ep.NodeName == node.Name
		switch {
		case ep.Ready:
			sel.HasAny = true
			localReady = localReady || local
		case ep.Serving && ep.Terminating:
			sel.HasAny = true
			localServingTerminating = localServingTerminating || local
		}
	}
	usesTerminating := false
	switch {
	case localReady:
		sel.Local = filter(eps, func(ep *Endpoint) bool { return ep.NodeName == node.Name && ep.Ready })
	case localServingTerminating:
		usesTerminating = true
		sel.Local = filter(eps, func(ep *Endpoint) bool {
			return ep.NodeName == node.Name && ep.Serving && ep.Terminating
		})
	}
	if !port.UsesClusterEndpoints() {
		sel.Reachable = sel.Local
		return sel
	}
	if mode == topologyNone && !usesTerminating {
		// Cluster holds every ready endpoint and Local only ready local ones: Cluster is
		// already the union.
		sel.Reachable = sel.Cluster
		return sel
	}
	// Local may hold terminating or topology-excluded endpoints that Cluster lacks.
	chosen := make(map[*Endpoint]struct{}, len(sel.Cluster)+len(sel.Local))
	for _, ep := range sel.Cluster {
		chosen[ep] = struct{}{}
	}
	for _, ep := range sel.Local {
		chosen[ep] = struct{}{}
	}
	sel.Reachable = filter(eps, func(ep *Endpoint) bool { _, ok := chosen[ep]; return ok })
	return sel
}

// topology says how hints narrow the cluster-wide endpoints.
type topology int

const (
	topologyNone topology = iota
	topologySameZone
	topologySameNode
)

func (m topology) allows(ep *Endpoint, node NodeTopology) bool {
	switch m {
	case topologySameNode:
		return slices.Contains(ep.NodeHints, node.Name)
	case topologySameZone:
		return slices.Contains(ep.ZoneHints, node.Zone)
	}
	return true
}

// topologyMode decides from the ready endpoints' hints whether topology applies.
func topologyMode(eps []*Endpoint, node NodeTopology) topology {
	anyReady := false
	allNodeHints, forThisNode := true, false
	allZoneHints, forThisZone := true, false
	for _, ep := range eps {
		if !ep.Ready {
			continue
		}
		anyReady = true
		if len(ep.NodeHints) == 0 {
			allNodeHints = false
		} else if slices.Contains(ep.NodeHints, node.Name) {
			forThisNode = true
		}
		if len(ep.ZoneHints) == 0 {
			allZoneHints = false
		} else if node.Zone != "" && slices.Contains(ep.ZoneHints, node.Zone) {
			forThisZone = true
		}
	}
	switch {
	case !anyReady:
		return topologyNone
	case allNodeHints && forThisNode:
		return topologySameNode
	case allZoneHints && forThisZone:
		return topologySameZone
	}
	return topologyNone
}

func filter(eps []*Endpoint, keep func(*Endpoint) bool) []*Endpoint {
	var out []*Endpoint
	for _, ep := range eps {
		if keep(ep) {
			out = append(out, ep)
		}
	}
	return out
}
