package nftables

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// TableName is the nftables table kube-proxy (and Switchyard) owns in each family.
const TableName = "kube-proxy"

// Base chains, hooked into netfilter; their names are "${type}-${hook}" as in
// kube-proxy.
const (
	chainFilterPreroutingPreDNAT = "filter-prerouting-pre-dnat"
	chainFilterOutputPreDNAT     = "filter-output-pre-dnat"
	chainFilterInput             = "filter-input"
	chainFilterForward           = "filter-forward"
	chainFilterOutput            = "filter-output"
	chainNATPrerouting           = "nat-prerouting"
	chainNATOutput               = "nat-output"
	chainNATPostrouting          = "nat-postrouting"
)

// Regular chains, sets and maps every full sync writes.
const (
	// ChainServices dispatches service traffic through the service-ips and
	// service-nodeports verdict maps. Its first rules only change with the Config, so
	// CheckKernel uses the jump to it as the canary.
	ChainServices            = "services"
	chainServiceEPCheck      = "service-endpoints-check"
	chainNodePortEPCheck     = "nodeport-endpoints-check"
	chainReject              = "reject-chain"
	chainClusterIPsCheck     = "cluster-ips-check"
	chainFirewallCheck       = "firewall-check"
	chainMasquerading        = "masquerading"
	mapServiceIPs            = "service-ips"
	mapServiceNodePorts      = "service-nodeports"
	setNodePortIPs           = "nodeport-ips"
	setClusterIPs            = "cluster-ips"
	mapNoEndpointServices    = "no-endpoint-services"
	mapNoEndpointNodePorts   = "no-endpoint-nodeports"
	mapFirewallIPs           = "firewall-ips"
	setHairpinConnections    = "hairpin-connections"
	mapLocalhostNodePortRej  = "localhost-nodeport-reject-ports"
	localhostNodePortRejPref = "localhost-nodeport-reject-"
	localhostNodePortCounter = "localhost-nodeport-rejected-"
)

// Prefixes of the per-service-port names.
const (
	prefixService  = "service-"
	prefixLocal    = "local-"
	prefixExternal = "external-"
	prefixFirewall = "firewall-"
	prefixEndpoint = "endpoint-"
	prefixAffinity = "affinity-"
)

// chainNameBaseMax is kube-proxy's limit on a name's part after the prefix: knftables'
// 256-byte name limit minus 16 for the longest prefix.
const chainNameBaseMax = knftables.NameLengthMax - 16

// hashAndTruncate is kube-proxy's naming scheme for service and endpoint chains: the
// first 8 characters of the standard base32 encoding of sha256(name), a dash, and the
// name itself, cut to chainNameBaseMax with "..." (which real names never reach). The
// readable part is what lets `nft list table` be read; the hash keeps names unique.
func hashAndTruncate(name string) string {
	sum := sha256.Sum256([]byte(name))
	var encoded [56]byte
	base32.StdEncoding.Encode(encoded[:], sum[:])
	out := string(encoded[:8]) + "-" + name
	if len(out) > chainNameBaseMax {
		out = out[:chainNameBaseMax-3] + "..."
	}
	return out
}

// serviceNameBase is "HASH-namespace/name/protocol/portname", e.g.
// "ULMVA6XW-ns1/svc1/tcp/p80": "/" is allowed in nftables names but not in the parts,
// so the parts cannot run into each other.
func serviceNameBase(name endpoints.ServicePortName) string {
	return hashAndTruncate(name.Namespace + "/" + name.Name + "/" + strings.ToLower(string(name.Protocol)) + "/" + name.Port)
}

// endpointNameBase is the service part, "__", and "ip/port", with an IPv6 address's
// colons (not allowed in names) turned into dots, e.g.
// "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80".
func endpointNameBase(name endpoints.ServicePortName, ep netip.AddrPort) string {
	ip := strings.ReplaceAll(ep.Addr().String(), ":", ".")
	return hashAndTruncate(name.Namespace + "/" + name.Name + "/" + strings.ToLower(string(name.Protocol)) + "/" + name.Port +
		"__" + ip + "/" + strconv.Itoa(int(ep.Port())))
}

// ServiceChain returns the Cluster-policy chain of a service port.
func ServiceChain(name endpoints.ServicePortName) string {
	return prefixService + serviceNameBase(name)
}

// LocalChain returns the Local-policy chain of a service port.
func LocalChain(name endpoints.ServicePortName) string { return prefixLocal + serviceNameBase(name) }

// ExternalChain returns the chain external destinations (node ports, external and
// load-balancer IPs) of a service port go to.
func ExternalChain(name endpoints.ServicePortName) string {
	return prefixExternal + serviceNameBase(name)
}

// FirewallChain returns the loadBalancerSourceRanges chain of a service port.
func FirewallChain(name endpoints.ServicePortName) string {
	return prefixFirewall + serviceNameBase(name)
}

// EndpointChain returns the chain of one endpoint of a service port (written only for
// services with session affinity).
func EndpointChain(name endpoints.ServicePortName, ep netip.AddrPort) string {
	return prefixEndpoint + endpointNameBase(name, ep)
}

// AffinitySet returns the session-affinity set of one endpoint of a service port.
func AffinitySet(name endpoints.ServicePortName, ep netip.AddrPort) string {
	return prefixAffinity + endpointNameBase(name, ep)
}

// IsServiceChain reports whether a chain is one of the per-service-port chains
// (kube-proxy's or Switchyard's): only they have a "/" in their names.
func IsServiceChain(name string) bool { return strings.Contains(name, "/") }

// isAffinitySet reports whether a set is a per-endpoint affinity set.
func isAffinitySet(name string) bool { return strings.HasPrefix(name, prefixAffinity) }
