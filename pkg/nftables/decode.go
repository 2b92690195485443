package nftables

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mdlayher/netlink"
)

// containerKeys returns the key type of each shared set and map (allContainers), as
// components of a concatenation, for an address type (ipv4_addr, ipv6_addr). The
// setup writes the containers with these types, and the netlink reads decode their
// elements by them.
func containerKeys(addr string) map[string][]string {
	ipPort := []string{addr, "inet_proto", "inet_service"}
	port := []string{"inet_proto", "inet_service"}
	return map[string][]string{
		setClusterIPs:          {addr},
		mapServiceIPs:          ipPort,
		mapFirewallIPs:         ipPort,
		mapNoEndpointServices:  ipPort,
		mapNoEndpointNodePorts: port,
		mapServiceNodePorts:    port,
		setHairpinConnections:  {addr, addr, "inet_proto", "inet_service"},
		// With kube-proxy's alpha gate only; full syncs list it (kernel.go).
		mapLocalhostNodePortRej: port,
	}
}

// keyTypeOf is the nft type of a key: its components joined with " . ".
func keyTypeOf(components []string) string { return strings.Join(components, " . ") }

// componentSizes are the byte lengths of the key types the containers use.
var componentSizes = map[string]int{"ipv4_addr": 4, "ipv6_addr": 16, "inet_proto": 1, "inet_service": 2}

// protocolNames are the inet_proto values nft prints by name (from its own table, not
// /etc/protocols) and the render writes by name.
var protocolNames = map[byte]string{6: "tcp", 17: "udp", 132: "sctp"}

// decodeKey returns an element key's components as nft (and knftables' ListElements)
// print them: each component of a concatenation takes a whole number of 4-byte
// registers, its value at the start; a lone component is unpadded.
func decodeKey(components []string, b []byte) ([]string, error) {
	out := make([]string, 0, len(components))
	rest := b
	for _, c := range components {
		size, ok := componentSizes[c]
		if !ok {
			return nil, fmt.Errorf("key type %s: cannot decode %s", keyTypeOf(components), c)
		}
		if len(rest) < size {
			return nil, fmt.Errorf("key %x is too short for %s", b, keyTypeOf(components))
		}
		v := rest[:size]
		switch c {
		case "ipv4_addr":
			out = append(out, netip.AddrFrom4([4]byte(v)).String())
		case "ipv6_addr":
			out = append(out, netip.AddrFrom16([16]byte(v)).String())
		case "inet_proto":
			if name, ok := protocolNames[v[0]]; ok {
				out = append(out, name)
			} else {
				out = append(out, strconv.Itoa(int(v[0])))
			}
		case "inet_service":
			out = append(out, strconv.Itoa(int(binary.BigEndian.Uint16(v))))
		}
		registers := (size + 3) / 4 * 4
		rest = rest[min(registers, len(rest)):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("key %x is too long for %s", b, keyTypeOf(components))
	}
	return out, nil
}

// Netlink attribute types of a verdict (linux/netfilter/nf_tables.h).
const (
	nftaVerdictCode  = 1
	nftaVerdictChain = 2
)

// Verdict codes (linux/netfilter.h and nf_tables.h), as nft prints them.
var verdictNames = map[int32]string{0: "drop", 1: "accept", -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}

// decodeVerdict returns a vmap element's value as nft prints it ("goto CHAIN", "drop"):
// b holds the nested attributes of NFTA_DATA_VERDICT, which google/nftables leaves
// undecoded.
func decodeVerdict(b []byte) (string, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", fmt.Errorf("verdict %x: %w", b, err)
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	var chain string
	var haveCode bool
	for ad.Next() {
		switch ad.Type() {
		case nftaVerdictCode:
			code, haveCode = int32(ad.Uint32()), true
		case nftaVerdictChain:
			chain = ad.String()
		}
	}
	if err := ad.Err(); err != nil {
		return "", fmt.Errorf("verdict %x: %w", b, err)
	}
	name, ok := verdictNames[code]
	if !haveCode || !ok {
		return "", fmt.Errorf("verdict %x: unknown code %d", b, code)
	}
	if chain != "" {
		return name + " " + chain, nil
	}
	return name, nil
}

// setType is the type of a shared set, for an address type.
func setType(addr, name string) string { return keyTypeOf(containerKeys(addr)[name]) }

// vmapType is the type of a shared verdict map, for an address type.
func vmapType(addr, name string) string { return setType(addr, name) + " : verdict" }
