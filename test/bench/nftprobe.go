package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// NFTProbe reads the kube-proxy table over netlink inside a node's namespace: one
// chain's rules and the elements of the maps they look up, which is what `nft list
// chain` prints, without the nft program. The benchmark's latencies are only as fine
// as its probe, and `nft list chain` took 100 ms on a loaded 1k × 10 table (nft
// 1.0.6 builds a cache of more than the one chain); a netlink dump of one chain takes
// a few hundred microseconds.
type NFTProbe struct {
	ns   *os.File
	conn *nftables.Conn
}

// OpenNFTProbe opens a probe of netns (a name under /run/netns).
func OpenNFTProbe(netns string) (*NFTProbe, error) {
	ns, err := os.Open(filepath.Join("/run/netns", netns))
	if err != nil {
		return nil, err
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("nftables netlink in %s: %w", netns, err)
	}
	return &NFTProbe{ns: ns, conn: conn}, nil
}

// Close releases the namespace.
func (p *NFTProbe) Close() error { return p.ns.Close() }

var nftTable = &nftables.Table{Name: NFTTable, Family: nftables.TableFamilyIPv4}

// missing reports whether err says the table, chain or set does not exist.
func missing(err error) bool {
	return errors.Is(err, syscall.ENOENT) || err != nil && bytes.Contains([]byte(err.Error()), []byte("no such file or directory"))
}

// ServiceEndpoints returns what service chain dispatches to: "IP:PORT" for each
// element of a "numgen ... map { N : IP . PORT }" dnat and for a single "dnat to
// IP:PORT", the chain name for each element of a "numgen ... vmap { N : goto
// endpoint-... }"; ok=false when the table or chain is missing. kube-proxy v1.37.2
// writes the map for a Service without session affinity, the vmap over per-endpoint
// chains with it.
func (p *NFTProbe) ServiceEndpoints(chain string) ([]string, bool, error) {
	rules, err := p.conn.GetRules(nftTable, &nftables.Chain{Name: chain, Table: nftTable})
	if missing(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("rules of %s: %w", chain, err)
	}
	var endpoints []string
	for _, rule := range rules {
		var address netip.Addr
		var port uint16
		for _, e := range rule.Exprs {
			switch e := e.(type) {
			case *expr.Lookup:
				if !e.IsDestRegSet {
					continue // a set match (affinity), not a map
				}
				elements, err := p.conn.GetSetElements(&nftables.Set{Table: nftTable, Name: e.SetName})
				if missing(err) {
					return nil, false, nil // replaced while we read
				}
				if err != nil {
					return nil, false, fmt.Errorf("elements of %s's %s: %w", chain, e.SetName, err)
				}
				for _, element := range elements {
					endpoints = append(endpoints, decodeNFTEndpoint(element.Val))
				}
			case *expr.Immediate:
				switch len(e.Data) {
				case 4:
					address = netip.AddrFrom4([4]byte(e.Data))
				case 2:
					port = binary.BigEndian.Uint16(e.Data)
				}
			case *expr.NAT:
				if address.IsValid() {
					endpoints = append(endpoints, netip.AddrPortFrom(address, port).String())
				}
			}
		}
	}
	return endpoints, true, nil
}

// decodeNFTEndpoint reads a map element's data: a concatenation "IP . PORT" (4 bytes
// of address, the port in the next register's first 2 bytes) or a verdict whose
// nested attributes hold the chain name.
func decodeNFTEndpoint(val []byte) string {
	if i := bytes.Index(val, []byte("endpoint-")); i >= 0 {
		name := val[i:]
		if end := bytes.IndexByte(name, 0); end >= 0 {
			name = name[:end]
		}
		return string(name)
	}
	if len(val) >= 6 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(val[:4])), binary.BigEndian.Uint16(val[4:6])).String()
	}
	return fmt.Sprintf("%x", val)
}

// HasEndpoint reports whether endpoints (ServiceEndpoints of Service i) include the
// one at address.
func HasEndpoint(endpoints []string, i int, address string) bool {
	want, chain := fmt.Sprintf("%s:%d", address, TargetPort), NFTEndpointChain(i, address)
	for _, e := range endpoints {
		if e == want || e == chain {
			return true
		}
	}
	return false
}

// MapHasChain reports whether the kube-proxy table's map name (service-ips, say) has
// an element whose verdict goes to chain; ok=false when the map is missing.
func (p *NFTProbe) MapHasChain(name, chain string) (has, ok bool, err error) {
	elements, err := p.conn.GetSetElements(&nftables.Set{Table: nftTable, Name: name})
	if missing(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("elements of %s: %w", name, err)
	}
	needle := append([]byte(chain), 0)
	for _, element := range elements {
		if bytes.Contains(element.Val, needle) {
			return true, true, nil
		}
	}
	return false, true, nil
}
