package ipvs

import (
	"bytes"
	"maps"
	"net/netip"
	"slices"

	"github.com/switchyard-io/switchyard/pkg/proxy"
)

// Status implements proxy.Provider. Its digest is of AppliedText: IPVS mode applies
// netlink operations, not one text, so what it holds applied is serialized instead.
// That costs O(virtual and real servers), which is why it is computed on demand, never
// by a sync.
func (p *Proxier) Status() proxy.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state.Status()
	if p.servers == nil && p.rules == nil {
		return st // nothing applied yet
	}
	var generation uint64
	if st.Applied != nil {
		generation = st.Applied.Generation
	}
	st.Digest = proxy.DigestOf(p.appliedTextLocked(), generation)
	return st
}

// AppliedText returns what the Proxier holds applied, in a canonical text: the
// virtual and real servers as `ipvsadm -Sn` prints them, sorted; the kube-ipvs0
// addresses, sorted; the ipset members as `ipset save` prints them, sorted; and the
// companion iptables-restore input of the last full sync. Two Proxiers that hold the
// same kernel state give the same text, whatever syncs brought them there.
func (p *Proxier) AppliedText() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.appliedTextLocked()
}

func (p *Proxier) appliedTextLocked() []byte {
	var b bytes.Buffer
	b.WriteString("# ipvsadm -Sn\n")
	for _, key := range slices.SortedFunc(maps.Keys(p.servers), Key.Compare) {
		a := p.servers[key]
		real := make([]RealServer, 0, len(a.real))
		for _, addr := range slices.SortedFunc(maps.Keys(a.real), netip.AddrPort.Compare) {
			real = append(real, RealServer{Addr: addr, Weight: a.real[addr]})
		}
		b.WriteString(FormatIPVSAdm(a.vs, real))
	}
	b.WriteString("# " + DummyInterface + "\n")
	for _, addr := range slices.SortedFunc(maps.Keys(p.addrRefs), netip.Addr.Compare) {
		b.WriteString(addr.String() + "\n")
	}
	b.WriteString("# ipset save\n")
	sets := Sets{}
	for e := range p.setRefs {
		sets[e.Set] = append(sets[e.Set], e.Entry)
	}
	b.WriteString(sets.Save(p.cfg.Family))
	b.WriteString("# iptables-restore\n")
	b.Write(p.rules)
	return b.Bytes()
}
