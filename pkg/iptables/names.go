package iptables

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// Chains that every sync owns, with kube-proxy's names.
const (
	// ChainServices dispatches packets to per-service chains (nat) and rejects traffic
	// to services without endpoints (filter).
	ChainServices = "KUBE-SERVICES"
	// ChainExternalServices rejects or drops external traffic to services without
	// (local) endpoints (filter).
	ChainExternalServices = "KUBE-EXTERNAL-SERVICES"
	// ChainNodePorts dispatches node-port traffic (nat) and accepts health-check node
	// ports (filter).
	ChainNodePorts = "KUBE-NODEPORTS"
	// ChainPostrouting masquerades marked packets (nat).
	ChainPostrouting = string(xtables.ChainKubePostrouting)
	// ChainMarkMasq marks packets for masquerade (nat).
	ChainMarkMasq = string(xtables.ChainKubeMarkMasq)
	// ChainForward accepts forwarded service traffic (filter).
	ChainForward = string(xtables.ChainKubeForward)
	// ChainProxyFirewall drops load-balancer traffic from outside the source ranges
	// (filter).
	ChainProxyFirewall = "KUBE-PROXY-FIREWALL"
	// ChainKubeletFirewall is kubelet's chain; kube-proxy writes the martian-localnet
	// drop rule into it when localhost node ports are enabled (filter).
	ChainKubeletFirewall = "KUBE-FIREWALL"
)

// Prefixes of per-service chains. A chain with one of these names that no service needs
// is stale and is deleted by a full sync.
const (
	PrefixServiceCluster = "KUBE-SVC-"
	PrefixServiceLocal   = "KUBE-SVL-"
	PrefixExternal       = "KUBE-EXT-"
	PrefixFirewall       = "KUBE-FW-"
	PrefixEndpoint       = "KUBE-SEP-"
)

// IsServiceChain reports whether a nat chain name is one of the per-service chains that
// Switchyard (or kube-proxy before it) creates.
func IsServiceChain(name string) bool {
	for _, p := range []string{PrefixServiceCluster, PrefixServiceLocal, PrefixExternal, PrefixFirewall, PrefixEndpoint} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// hashName is kube-proxy's naming scheme: the prefix and the first 16 characters of the
// standard base32 encoding of sha256(servicePortName + lowercase protocol + extra),
// where extra is "" or an endpoint's "ip:port". iptables limits chain names to 28
// characters, and keeping the exact scheme lets Switchyard adopt kube-proxy's chains.
// The hashed text is assembled on the stack: a full render names some 100k chains.
func hashName(prefix string, name endpoints.ServicePortName, extra string) string {
	var stack [256]byte
	text := append(stack[:0], name.Namespace...)
	text = append(text, '/')
	text = append(text, name.Name...)
	if name.Port != "" {
		text = append(text, ':')
		text = append(text, name.Port...)
	}
	for _, c := range []byte(name.Protocol) {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		text = append(text, c)
	}
	text = append(text, extra...)
	sum := sha256.Sum256(text)
	var encoded [56]byte
	base32.StdEncoding.Encode(encoded[:], sum[:])
	return prefix + string(encoded[:16])
}

// ServiceChain returns the KUBE-SVC- chain of a service port (Cluster policy).
func ServiceChain(name endpoints.ServicePortName) string {
	return hashName(PrefixServiceCluster, name, "")
}

// LocalServiceChain returns the KUBE-SVL- chain of a service port (Local policy).
func LocalServiceChain(name endpoints.ServicePortName) string {
	return hashName(PrefixServiceLocal, name, "")
}

// ExternalChain returns the KUBE-EXT- chain of a service port.
func ExternalChain(name endpoints.ServicePortName) string {
	return hashName(PrefixExternal, name, "")
}

// FirewallChain returns the KUBE-FW- chain of a service port.
func FirewallChain(name endpoints.ServicePortName) string {
	return hashName(PrefixFirewall, name, "")
}

// EndpointChain returns the KUBE-SEP- chain of one endpoint of a service port; the
// endpoint is "ip:port" (IPv6 in brackets).
func EndpointChain(name endpoints.ServicePortName, endpoint string) string {
	return hashName(PrefixEndpoint, name, endpoint)
}
