package endpoints

import (
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/types"
)

// SnapshotView is a Snapshot as JSON, for the daemon's state dump: mode-neutral,
// with field names that are part of the dump's format (docs/debugging.md). It is
// built field by field rather than by marshalling the internal types, so that
// renaming an internal field never changes the format.
type SnapshotView struct {
	// Generation is the snapshot's generation.
	Generation uint64 `json:"generation"`
	// Services holds every Service with a programmable port, sorted by namespace
	// and name.
	Services []ServiceView `json:"services"`
}

// ServiceView is one Service: its ports, sorted by port name and protocol.
type ServiceView struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Ports     []ServicePortView `json:"ports"`
}

// ServicePortView is one service port as it is programmed, with its endpoints.
type ServicePortView struct {
	// Name is the port's name ("" for a single unnamed port); ServicePortName is
	// "namespace/name:port", as chain comments print it.
	Name                     string         `json:"name"`
	ServicePortName          string         `json:"servicePortName"`
	Protocol                 string         `json:"protocol"`
	Port                     int32          `json:"port"`
	NodePort                 int32          `json:"nodePort,omitempty"`
	ClusterIPs               []netip.Addr   `json:"clusterIPs,omitempty"`
	ExternalIPs              []netip.Addr   `json:"externalIPs,omitempty"`
	LoadBalancerVIPs         []netip.Addr   `json:"loadBalancerVIPs,omitempty"`
	LoadBalancerSourceRanges []netip.Prefix `json:"loadBalancerSourceRanges,omitempty"`
	ExternalPolicyLocal      bool           `json:"externalTrafficPolicyLocal,omitempty"`
	InternalPolicyLocal      bool           `json:"internalTrafficPolicyLocal,omitempty"`
	HealthCheckNodePort      int32          `json:"healthCheckNodePort,omitempty"`
	AffinityTimeoutSeconds   int32          `json:"sessionAffinityTimeoutSeconds,omitempty"`
	Scheduler                string         `json:"ipvsScheduler,omitempty"`
	// Endpoints are the merged endpoints, in the snapshot's order; empty when the
	// port has none.
	Endpoints []EndpointView `json:"endpoints"`
}

// EndpointView is one endpoint of a service port, with its conditions (the API's
// defaults applied) and topology hints.
type EndpointView struct {
	Address     netip.Addr `json:"address"`
	Port        int32      `json:"port"`
	Ready       bool       `json:"ready"`
	Serving     bool       `json:"serving"`
	Terminating bool       `json:"terminating"`
	NodeName    string     `json:"nodeName,omitempty"`
	Zone        string     `json:"zone,omitempty"`
	ZoneHints   []string   `json:"zoneHints,omitempty"`
	NodeHints   []string   `json:"nodeHints,omitempty"`
}

// View returns the snapshot's JSON view. Its cost is O(service ports + endpoints).
func (s *Snapshot) View() SnapshotView {
	view := SnapshotView{Generation: s.Generation, Services: []ServiceView{}}
	for _, name := range s.SortedServices() {
		port := s.Services[name]
		if n := len(view.Services); n == 0 || view.Services[n-1].Namespace != name.Namespace || view.Services[n-1].Name != name.Name {
			view.Services = append(view.Services, ServiceView{Namespace: name.Namespace, Name: name.Name})
		}
		svc := &view.Services[len(view.Services)-1]
		svc.Ports = append(svc.Ports, portView(port, s.Endpoints[name]))
	}
	return view
}

func portView(port *ServicePort, eps []*Endpoint) ServicePortView {
	view := ServicePortView{
		Name: port.Name.Port, ServicePortName: port.Name.String(), Protocol: string(port.Name.Protocol),
		Port: port.Port, NodePort: port.NodePort,
		ClusterIPs: slices.Clone(port.ClusterIPs), ExternalIPs: slices.Clone(port.ExternalIPs),
		LoadBalancerVIPs: slices.Clone(port.LoadBalancerVIPs), LoadBalancerSourceRanges: slices.Clone(port.LoadBalancerSourceRanges),
		ExternalPolicyLocal: port.ExternalPolicyLocal, InternalPolicyLocal: port.InternalPolicyLocal,
		HealthCheckNodePort: port.HealthCheckNodePort, AffinityTimeoutSeconds: port.AffinityTimeoutSeconds,
		Scheduler: port.Scheduler,
		Endpoints: make([]EndpointView, 0, len(eps)),
	}
	for _, ep := range eps {
		view.Endpoints = append(view.Endpoints, EndpointView{
			Address: ep.IP, Port: ep.Port, Ready: ep.Ready, Serving: ep.Serving, Terminating: ep.Terminating,
			NodeName: ep.NodeName, Zone: ep.Zone, ZoneHints: slices.Clone(ep.ZoneHints), NodeHints: slices.Clone(ep.NodeHints),
		})
	}
	return view
}

// ServicesOf returns the Services the service ports belong to, sorted and without
// duplicates.
func ServicesOf(names []ServicePortName) []types.NamespacedName {
	services := make([]types.NamespacedName, 0, len(names))
	for _, name := range names {
		services = append(services, name.NamespacedName)
	}
	slices.SortFunc(services, func(a, b types.NamespacedName) int {
		if a.Namespace != b.Namespace {
			return cmpString(a.Namespace, b.Namespace)
		}
		return cmpString(a.Name, b.Name)
	})
	return slices.Compact(services)
}
