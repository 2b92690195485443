package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// KernelState is the part of one family's IPVS state a full sync reads: every virtual
// server with its real servers, the addresses on kube-ipvs0 and the members of
// kube-proxy's ipsets. ReadKernel fills it without changing anything.
type KernelState struct {
	Family    v1.IPFamily
	Servers   []VirtualServer
	Real      map[Key][]RealServer
	Addresses []netip.Addr
	// Sets maps each set's IPv4 name (SetSpec.Name) to its members; a set that does
	// not exist is absent.
	Sets map[string][]string
}

// ReadKernel reads one family's KernelState through the kernel interfaces, read-only.
func ReadKernel(ctx context.Context, family v1.IPFamily, table Interface, links Links, sets IPSets) (*KernelState, error) {
	ks := &KernelState{Family: family, Real: map[Key][]RealServer{}, Sets: map[string][]string{}}
	servers, err := table.VirtualServers()
	if err != nil {
		return nil, fmt.Errorf("listing virtual servers: %w", err)
	}
	for _, vs := range servers {
		if endpoints.FamilyOf(vs.Addr) != family {
			continue
		}
		ks.Servers = append(ks.Servers, vs)
		real, err := table.RealServers(vs.Key)
		if err != nil {
			return nil, fmt.Errorf("listing the real servers of %s: %w", vs.Key, err)
		}
		for _, r := range real {
			ks.Real[vs.Key] = append(ks.Real[vs.Key], r.RealServer)
		}
	}
	addrs, err := links.Addresses(DummyInterface)
	if err != nil && !errors.Is(err, ErrNoLink) {
		return nil, fmt.Errorf("listing %s's addresses: %w", DummyInterface, err)
	}
	for _, a := range addrs {
		if endpoints.FamilyOf(a) == family {
			ks.Addresses = append(ks.Addresses, a)
		}
	}
	for _, spec := range SetSpecs {
		members, err := sets.Entries(ctx, SetName(spec.Name, family))
		switch {
		case errors.Is(err, ErrNoSet):
			continue
		case err != nil:
			return nil, fmt.Errorf("listing ipset %s: %w", SetName(spec.Name, family), err)
		}
		ks.Sets[spec.Name] = append([]string{}, members...)
	}
	return ks, nil
}

// DiffSection is one part of the IPVS state as text lines, before and after a full
// sync, for a unified diff.
type DiffSection struct {
	// Name says what the lines are: "ipvs", "addresses" or "ipsets".
	Name string
	// Kernel and Synced are the lines now and after a full sync, each ending in "\n".
	Kernel, Synced []string
}

// FullSyncDiff returns what a full sync for st would change in ks, Switchyard's part
// only, as the Proxier's full sync decides it: virtual servers are Switchyard's when
// wanted, bound on kube-ipvs0 or named by a node-port set, and never inside
// --ipvs-exclude-cidrs; a wanted one gets exactly its real servers, except that a TCP
// real server no longer wanted stays with weight 0 (graceful termination) unless the
// scheduler hashes; kube-ipvs0 holds exactly st's addresses (excluded ones are left
// alone); every set holds exactly st's members. Virtual servers print in `ipvsadm -Sn`
// form, sorted; sets in `ipset save` form.
func FullSyncDiff(cfg *Config, st *State, ks *KernelState) []DiffSection {
	own := &ownership{cfg: cfg, bound: map[netip.Addr]bool{}, nodePorts: map[v1.Protocol]map[string]bool{}, desired: st.Owners}
	for _, a := range ks.Addresses {
		own.bound[a] = true
	}
	for proto, set := range nodePortSets {
		own.nodePorts[proto] = map[string]bool{}
		for _, m := range ks.Sets[set] {
			own.nodePorts[proto][m] = true
		}
	}
	return []DiffSection{serversSection(st, ks, own), addressesSection(cfg, st, ks), setsSection(cfg.Family, st, ks)}
}

func serversSection(st *State, ks *KernelState, own *ownership) DiffSection {
	sec := DiffSection{Name: "ipvs"}
	kernel := slices.Clone(ks.Servers)
	slices.SortFunc(kernel, func(a, b VirtualServer) int { return a.Key.Compare(b.Key) })
	for _, vs := range kernel {
		if !own.owns(vs.Key) {
			continue
		}
		sec.Kernel = append(sec.Kernel, splitLines(FormatIPVSAdm(vs, sortedReal(ks.Real[vs.Key])))...)
	}
	inKernel := map[Key]bool{}
	for _, vs := range ks.Servers {
		inKernel[vs.Key] = true
	}
	for _, ds := range st.Servers {
		real := slices.Clone(ds.RealServers)
		if inKernel[ds.Key] && ds.Protocol == v1.ProtocolTCP && !hashingScheduler(ds.Scheduler) {
			for _, r := range ks.Real[ds.Key] {
				if !slices.ContainsFunc(real, func(w RealServer) bool { return w.Addr == r.Addr }) {
					real = append(real, RealServer{Addr: r.Addr, Weight: 0})
				}
			}
		}
		sec.Synced = append(sec.Synced, splitLines(FormatIPVSAdm(ds.VirtualServer, sortedReal(real)))...)
	}
	return sec
}

func sortedReal(real []RealServer) []RealServer {
	out := slices.Clone(real)
	slices.SortFunc(out, func(a, b RealServer) int { return a.Addr.Compare(b.Addr) })
	return out
}

func addressesSection(cfg *Config, st *State, ks *KernelState) DiffSection {
	sec := DiffSection{Name: "addresses"}
	bits := "/32"
	if cfg.Family == v1.IPv6Protocol {
		bits = "/128"
	}
	kernel := slices.Clone(ks.Addresses)
	slices.SortFunc(kernel, netip.Addr.Compare)
	for _, a := range kernel {
		line := DummyInterface + " " + a.String() + bits + "\n"
		sec.Kernel = append(sec.Kernel, line)
		if cfg.excluded(a) && !slices.Contains(st.Addresses, a) {
			sec.Synced = append(sec.Synced, line) // left alone
		}
	}
	for _, a := range st.Addresses {
		sec.Synced = append(sec.Synced, DummyInterface+" "+a.String()+bits+"\n")
	}
	slices.SortFunc(sec.Synced, func(a, b string) int { return compareAddrLines(a, b) })
	return sec
}

// compareAddrLines orders "kube-ipvs0 ADDR/BITS" lines by address.
func compareAddrLines(a, b string) int {
	pa, errA := netip.ParsePrefix(a[len(DummyInterface)+1 : len(a)-1])
	pb, errB := netip.ParsePrefix(b[len(DummyInterface)+1 : len(b)-1])
	if errA != nil || errB != nil {
		return 0
	}
	return pa.Addr().Compare(pb.Addr())
}

func setsSection(family v1.IPFamily, st *State, ks *KernelState) DiffSection {
	sec := DiffSection{Name: "ipsets"}
	for _, spec := range SetSpecs {
		name := SetName(spec.Name, family)
		if members, ok := ks.Sets[spec.Name]; ok {
			sec.Kernel = append(sec.Kernel, setLines(name, spec.Type, family, members)...)
		}
		sec.Synced = append(sec.Synced, setLines(name, spec.Type, family, st.Sets[spec.Name])...)
	}
	return sec
}

func setLines(name string, typ SetType, family v1.IPFamily, members []string) []string {
	out := []string{createLine(name, typ, family) + "\n"}
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	for _, m := range sorted {
		out = append(out, "add "+name+" "+m+"\n")
	}
	return out
}

func splitLines(text string) []string {
	var out []string
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			out = append(out, text[start:i+1])
			start = i + 1
		}
	}
	if start < len(text) {
		out = append(out, text[start:]+"\n")
	}
	return out
}
