package explain

import (
	"fmt"
	"net/netip"
)

// From says where a packet comes from, which decides the netfilter hooks it
// enters and how kube-proxy's rules treat it.
type From string

const (
	// FromPod is a packet sent by a pod on this node: it arrives on the pod's
	// interface and starts in PREROUTING.
	FromPod From = "pod"
	// FromNode is a packet sent by a process on the node itself (or a
	// host-network pod): it starts in OUTPUT.
	FromNode From = "node"
	// FromOutside is a packet that arrives from another machine (another node,
	// a load balancer, a client outside the cluster): it starts in PREROUTING.
	FromOutside From = "outside"
)

// ParseFrom parses "pod", "node" or "outside".
func ParseFrom(s string) (From, error) {
	switch f := From(s); f {
	case FromPod, FromNode, FromOutside:
		return f, nil
	}
	return "", fmt.Errorf("from %q: want pod, node or outside", s)
}

// Packet is the first packet of a new connection, the question explain
// answers.
type Packet struct {
	// Src is the client's address.
	Src netip.Addr `json:"src"`
	// Dst is the address and port the client connects to.
	Dst netip.AddrPort `json:"dst"`
	// Proto is "tcp", "udp" or "sctp".
	Proto string `json:"proto"`
	// From says where the packet comes from.
	From From `json:"from"`
}

// String formats the packet as "tcp 10.244.1.5 -> 10.96.0.10:53 from a pod".
func (p Packet) String() string {
	return fmt.Sprintf("%s %s -> %s from %s", p.Proto, p.Src, p.Dst, p.From.words())
}

func (f From) words() string {
	switch f {
	case FromPod:
		return "a pod on this node"
	case FromNode:
		return "the node itself"
	case FromOutside:
		return "outside this node"
	}
	return string(f)
}

// AddressKind says which of a Service's addresses a packet was sent to.
type AddressKind string

const (
	// ClusterIP is the Service's spec.clusterIP(s).
	ClusterIP AddressKind = "cluster-ip"
	// NodePort is a node address with the Service's node port.
	NodePort AddressKind = "node-port"
	// ExternalIP is one of spec.externalIPs.
	ExternalIP AddressKind = "external-ip"
	// LoadBalancerIP is one of status.loadBalancer.ingress[].ip.
	LoadBalancerIP AddressKind = "load-balancer-ip"
)

// words returns the kind as a reader would say it.
func (k AddressKind) words() string {
	switch k {
	case ClusterIP:
		return "cluster IP"
	case NodePort:
		return "node port"
	case ExternalIP:
		return "external IP"
	case LoadBalancerIP:
		return "load-balancer IP"
	}
	return string(k)
}

// Service is the Service port a packet matched.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Port is the port's name; empty for a Service's single unnamed port.
	Port string `json:"port,omitempty"`
	// Kind is which of the Service's addresses the packet was sent to.
	Kind AddressKind `json:"kind"`
}

// String returns "namespace/name:port" ("namespace/name" without a port
// name), as kube-proxy's rule comments name a Service port.
func (s Service) String() string {
	if s.Port == "" {
		return s.Namespace + "/" + s.Name
	}
	return s.Namespace + "/" + s.Name + ":" + s.Port
}

// Step is one place the packet went through, in order.
type Step struct {
	// Where is the chain ("nat/KUBE-SVC-ERIFXISQEP7F7OF4") or the virtual
	// server ("IPVS TCP 10.96.0.10:53").
	Where string `json:"where"`
	// What says in a plain sentence what happened there.
	What string `json:"what"`
}

// Endpoint is one place the packet can be delivered to.
type Endpoint struct {
	// Address is the endpoint's address and port (the DNAT or real-server
	// destination).
	Address netip.AddrPort `json:"address"`
	// Probability is the chance a new connection picks this endpoint
	// (iptables mode; 0 in IPVS mode, where the scheduler decides).
	Probability float64 `json:"probability,omitempty"`
	// Weight is the IPVS real server's weight (IPVS mode only).
	Weight *int `json:"weight,omitempty"`
	// Pod is "namespace/name" of the pod behind the endpoint, when the
	// EndpointSlices name it.
	Pod string `json:"pod,omitempty"`
	// Node is the node the endpoint runs on, when known.
	Node string `json:"node,omitempty"`
	// Local is true when the endpoint runs on this node.
	Local bool `json:"local"`
	// Masquerade is true when the packet is masqueraded on its way to this
	// endpoint. It can differ between endpoints: a pod reaching itself
	// through its Service (hairpin) is masqueraded only for its own endpoint.
	Masquerade bool `json:"masquerade"`
}

// Affinity is ClientIP session affinity on the matched Service port.
type Affinity struct {
	// TimeoutSeconds is how long a client keeps going to the same endpoint
	// after its last new connection.
	TimeoutSeconds int `json:"timeoutSeconds"`
}

// Verdict is how the packet's journey ends.
type Verdict string

const (
	// Delivered: the packet reaches an endpoint (or, for a Service address
	// that is the node's own, a local socket).
	Delivered Verdict = "delivered"
	// Dropped: the packet is silently discarded.
	Dropped Verdict = "dropped"
	// Rejected: the packet is refused with an ICMP error or a TCP reset.
	Rejected Verdict = "rejected"
	// NotAService: no Service matches; the proxy's rules let the packet pass
	// untouched, to be routed like any other.
	NotAService Verdict = "not-a-service"
)

// Explanation is explain's answer for one packet.
type Explanation struct {
	// Mode is the proxy mode whose rules were read: "iptables", "ipvs" or
	// "nftables".
	Mode   string `json:"mode"`
	Packet Packet `json:"packet"`
	// Service is the matched Service port, or nil when none matched.
	Service *Service `json:"service,omitempty"`
	// Steps are the chains or virtual servers traversed, in order. With
	// several candidate endpoints they are those of the first candidate up
	// to the choice of endpoint.
	Steps []Step `json:"steps"`
	// Endpoints are the candidate endpoints, sorted by address.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Scheduler is the IPVS scheduler (IPVS mode only).
	Scheduler string `json:"scheduler,omitempty"`
	// Masquerade is true when the packet is masqueraded (source address
	// replaced by the node's) for at least one candidate endpoint.
	Masquerade bool `json:"masquerade"`
	// MasqueradeReason says why it is masqueraded, or why not.
	MasqueradeReason string `json:"masqueradeReason,omitempty"`
	// Affinity is set when ClientIP session affinity applies.
	Affinity *Affinity `json:"affinity,omitempty"`
	Verdict  Verdict   `json:"verdict"`
	// Reason says why the packet ends as it does, in a sentence.
	Reason string `json:"reason"`
}

// ExitCode is the `switchyard explain` exit status for the explanation: 0
// when the packet gets through (delivered, or untouched because it is not for
// a Service), 1 when it is dropped or rejected.
func (e *Explanation) ExitCode() int {
	if e.Verdict == Delivered || e.Verdict == NotAService {
		return 0
	}
	return 1
}
