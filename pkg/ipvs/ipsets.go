package ipvs

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// The ipsets of kube-proxy's IPVS mode, with its names (IPv4; IPv6 sets are named
// KUBE-6-…). The companion iptables rules match packets against them, so that the rule
// count stays constant however many services there are.
const (
	SetLoopBack               = "KUBE-LOOP-BACK"
	SetClusterIP              = "KUBE-CLUSTER-IP"
	SetExternalIP             = "KUBE-EXTERNAL-IP"
	SetExternalIPLocal        = "KUBE-EXTERNAL-IP-LOCAL"
	SetLoadBalancer           = "KUBE-LOAD-BALANCER"
	SetLoadBalancerFW         = "KUBE-LOAD-BALANCER-FW"
	SetLoadBalancerLocal      = "KUBE-LOAD-BALANCER-LOCAL"
	SetLoadBalancerSourceIP   = "KUBE-LOAD-BALANCER-SOURCE-IP"
	SetLoadBalancerSourceCIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
	SetNodePortTCP            = "KUBE-NODE-PORT-TCP"
	SetNodePortLocalTCP       = "KUBE-NODE-PORT-LOCAL-TCP"
	SetNodePortUDP            = "KUBE-NODE-PORT-UDP"
	SetNodePortLocalUDP       = "KUBE-NODE-PORT-LOCAL-UDP"
	SetNodePortSCTP           = "KUBE-NODE-PORT-SCTP-HASH"
	SetNodePortLocalSCTP      = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
	SetHealthCheckNodePort    = "KUBE-HEALTH-CHECK-NODE-PORT"
	SetIPVSIPs                = "KUBE-IPVS-IPS"
)

// SetType is an ipset type.
type SetType string

// The set types used.
const (
	HashIP        SetType = "hash:ip"
	HashIPPort    SetType = "hash:ip,port"
	HashIPPortIP  SetType = "hash:ip,port,ip"
	HashIPPortNet SetType = "hash:ip,port,net"
	BitmapPort    SetType = "bitmap:port"
)

// SetSpec describes one of kube-proxy's ipsets.
type SetSpec struct {
	// Name is the IPv4 name; use NameFor for the family's.
	Name    string
	Type    SetType
	Comment string
}

// SetSpecs are kube-proxy's ipsets, in its order.
var SetSpecs = []SetSpec{
	{SetLoopBack, HashIPPortIP, "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"},
	{SetClusterIP, HashIPPort, "Kubernetes service cluster ip + port for masquerade purpose"},
	{SetExternalIP, HashIPPort, "Kubernetes service external ip + port for masquerade and filter purpose"},
	{SetExternalIPLocal, HashIPPort, "Kubernetes service external ip + port with externalTrafficPolicy=local"},
	{SetLoadBalancer, HashIPPort, "Kubernetes service lb portal"},
	{SetLoadBalancerFW, HashIPPort, "Kubernetes service load balancer ip + port for load balancer with sourceRange"},
	{SetLoadBalancerLocal, HashIPPort, "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"},
	{SetLoadBalancerSourceIP, HashIPPortIP, "Kubernetes service load balancer ip + port + source IP for packet filter purpose"},
	{SetLoadBalancerSourceCIDR, HashIPPortNet, "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"},
	{SetNodePortTCP, BitmapPort, "Kubernetes nodeport TCP port for masquerade purpose"},
	{SetNodePortLocalTCP, BitmapPort, "Kubernetes nodeport TCP port with externalTrafficPolicy=local"},
	{SetNodePortUDP, BitmapPort, "Kubernetes nodeport UDP port for masquerade purpose"},
	{SetNodePortLocalUDP, BitmapPort, "Kubernetes nodeport UDP port with externalTrafficPolicy=local"},
	{SetNodePortSCTP, HashIPPort, "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"},
	{SetNodePortLocalSCTP, HashIPPort, "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"},
	{SetHealthCheckNodePort, BitmapPort, "Kubernetes health check node port"},
	{SetIPVSIPs, HashIP, "Addresses on the ipvs interface"},
}

// SetName returns the name of a set for a family: kube-proxy renames IPv6 sets from
// KUBE-… to KUBE-6-…, cut to the kernel's 31 characters.
func SetName(name string, family v1.IPFamily) string {
	if family != v1.IPv6Protocol {
		return name
	}
	name = strings.Replace(name, "KUBE-", "KUBE-6-", 1)
	if len(name) > 31 {
		name = name[:31]
	}
	return name
}

// createLine returns the `ipset restore` line that creates a set of the family.
func createLine(name string, typ SetType, family v1.IPFamily) string {
	if typ == BitmapPort {
		return fmt.Sprintf("create %s %s range 0-65535", name, typ)
	}
	fam := "inet"
	if family == v1.IPv6Protocol {
		fam = "inet6"
	}
	return fmt.Sprintf("create %s %s family %s hashsize 1024 maxelem 65536", name, typ, fam)
}

// SetEntry is one member of one ipset.
type SetEntry struct {
	// Set is the IPv4 name of the set (see SetName).
	Set string
	// Entry is the member in ipset syntax, e.g. "10.96.0.1,tcp:80".
	Entry string
}

// Sets maps each set (IPv4 name) to its members.
type Sets map[string][]string

// RestoreFull returns the `ipset restore` input that makes every set hold exactly the
// given members. Each set is filled under a temporary name and swapped in, so no packet
// ever sees a half-filled set.
func (s Sets) RestoreFull(family v1.IPFamily) []byte {
	var b bytes.Buffer
	for i, spec := range SetSpecs {
		name := SetName(spec.Name, family)
		tmp := fmt.Sprintf("SY-TMP-%d", i)
		if family == v1.IPv6Protocol {
			tmp = fmt.Sprintf("SY-TMP6-%d", i)
		}
		fmt.Fprintf(&b, "%s -exist\n", createLine(name, spec.Type, family))
		fmt.Fprintf(&b, "%s\n", createLine(tmp, spec.Type, family))
		for _, e := range s[spec.Name] {
			fmt.Fprintf(&b, "add %s %s\n", tmp, e)
		}
		fmt.Fprintf(&b, "swap %s %s\n", tmp, name)
		fmt.Fprintf(&b, "destroy %s\n", tmp)
	}
	return b.Bytes()
}

// Save prints the sets as `ipset save` would (members sorted), for dry-run and tests.
func (s Sets) Save(family v1.IPFamily) string {
	var b strings.Builder
	for _, spec := range SetSpecs {
		name := SetName(spec.Name, family)
		fmt.Fprintf(&b, "%s\n", createLine(name, spec.Type, family))
		members := slices.Clone(s[spec.Name])
		slices.Sort(members)
		for _, e := range members {
			fmt.Fprintf(&b, "add %s %s\n", name, e)
		}
	}
	return b.String()
}

// setDelta is a change to set members: members to add and to delete, per set.
type setDelta struct {
	add, del map[string][]string
}

// restore returns the `ipset restore` input for the delta, deletions first; -exist
// makes each line idempotent, since the kernel may already agree.
func (d setDelta) restore(family v1.IPFamily) []byte {
	var b bytes.Buffer
	for _, set := range slices.Sorted(maps.Keys(d.del)) {
		for _, e := range d.del[set] {
			fmt.Fprintf(&b, "del %s %s -exist\n", SetName(set, family), e)
		}
	}
	for _, set := range slices.Sorted(maps.Keys(d.add)) {
		for _, e := range d.add[set] {
			fmt.Fprintf(&b, "add %s %s -exist\n", SetName(set, family), e)
		}
	}
	return b.Bytes()
}

func (d setDelta) empty() bool { return len(d.add) == 0 && len(d.del) == 0 }
