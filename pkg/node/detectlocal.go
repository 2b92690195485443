package node

import (
	"fmt"
	"net/netip"
)

// LocalMode is kube-proxy's --detect-local-mode: how a packet is known to come from a
// pod on this node.
type LocalMode string

// The local-traffic detection modes of kube-proxy v1.37.
const (
	// LocalModeClusterCIDR matches sources inside --cluster-cidr.
	LocalModeClusterCIDR LocalMode = "ClusterCIDR"
	// LocalModeNodeCIDR matches sources inside the Node's spec.podCIDRs.
	LocalModeNodeCIDR LocalMode = "NodeCIDR"
	// LocalModeBridgeInterface matches packets arriving on the pods' bridge
	// (--pod-bridge-interface).
	LocalModeBridgeInterface LocalMode = "BridgeInterface"
	// LocalModeInterfaceNamePrefix matches packets arriving on an interface whose name
	// starts with --pod-interface-name-prefix.
	LocalModeInterfaceNamePrefix LocalMode = "InterfaceNamePrefix"
)

// ParseLocalMode checks a --detect-local-mode value; "" means ClusterCIDR, as in
// kube-proxy.
func ParseLocalMode(s string) (LocalMode, error) {
	switch m := LocalMode(s); m {
	case "":
		return LocalModeClusterCIDR, nil
	case LocalModeClusterCIDR, LocalModeNodeCIDR, LocalModeBridgeInterface, LocalModeInterfaceNamePrefix:
		return m, nil
	}
	return "", fmt.Errorf("--detect-local-mode %q: want ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix", s)
}

// LocalDetector is kube-proxy's LocalTrafficDetector for one family: the iptables
// matches that tell traffic from this node's pods apart. The zero value detects
// nothing (kube-proxy's no-op detector, used when the mode's CIDR is missing).
type LocalDetector struct {
	// Mode is the detection mode; "" detects nothing.
	Mode LocalMode
	// CIDR is the pod range for the CIDR modes.
	CIDR netip.Prefix
	// Interface is the bridge name or the interface-name prefix for the interface
	// modes.
	Interface string
	// args caches IfLocal's arguments and notArgs IfNotLocal's, set by the
	// constructors: the renderers ask for them once per service port. A detector
	// written as a literal computes them on each call.
	args, notArgs []string
}

// withArgs returns d with its match arguments computed once.
func (d LocalDetector) withArgs() LocalDetector {
	d.args, d.notArgs = nil, nil
	d.args = d.IfLocal()
	d.notArgs = d.IfNotLocal()
	return d
}

// DetectByInterface detects pods by input interface, in mode BridgeInterface (name is
// the bridge) or InterfaceNamePrefix (name is the prefix); an empty name detects
// nothing.
func DetectByInterface(mode LocalMode, name string) LocalDetector {
	return LocalDetector{Mode: mode, Interface: name}.withArgs()
}

// DetectByCIDR detects pods by source address, in mode ClusterCIDR or NodeCIDR; an
// invalid prefix detects nothing.
func DetectByCIDR(mode LocalMode, cidr netip.Prefix) LocalDetector {
	if !cidr.IsValid() {
		return LocalDetector{}
	}
	return LocalDetector{Mode: mode, CIDR: cidr.Masked()}.withArgs()
}

// Implemented reports whether the detector matches anything; when it does not, the
// rules that need it are left out, as kube-proxy leaves them out.
func (d LocalDetector) Implemented() bool { return len(d.IfLocal()) > 0 }

// IfLocal returns the iptables arguments that match traffic from a local pod, with
// kube-proxy's exact text: "-s CIDR", "-i BRIDGE" or "-i PREFIX+".
func (d LocalDetector) IfLocal() []string {
	if d.args != nil {
		return d.args
	}
	switch d.Mode {
	case LocalModeClusterCIDR, LocalModeNodeCIDR:
		if d.CIDR.IsValid() {
			return []string{"-s", d.CIDR.String()}
		}
	case LocalModeBridgeInterface:
		if d.Interface != "" {
			return []string{"-i", d.Interface}
		}
	case LocalModeInterfaceNamePrefix:
		if d.Interface != "" {
			return []string{"-i", d.Interface + "+"}
		}
	}
	return nil
}

// IfNotLocal returns the iptables arguments that match traffic that is not from a
// local pod: IfLocal negated with a leading "!".
func (d LocalDetector) IfNotLocal() []string {
	if d.notArgs != nil {
		return d.notArgs
	}
	local := d.IfLocal()
	if local == nil {
		return nil
	}
	return append([]string{"!"}, local...)
}
