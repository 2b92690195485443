package ipvs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

// kernelText serializes what the fake kernel holds in AppliedText's format, from the
// fakes themselves: the IPVS table, kube-ipvs0's addresses, the members of every
// set, and the last companion iptables-restore input.
func (b *bed) kernelText(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	out.WriteString("# ipvsadm -Sn\n" + b.ipvs.Dump())
	out.WriteString("# " + ipvs.DummyInterface + "\n")
	addrs, err := b.links.Addresses(ipvs.DummyInterface)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		out.WriteString(a.String() + "\n")
	}
	out.WriteString("# ipset save\n")
	sets := ipvs.Sets{}
	for _, spec := range ipvs.SetSpecs {
		members, err := b.sets.Entries(ctx, ipvs.SetName(spec.Name, v1.IPv4Protocol))
		if err != nil {
			t.Fatal(err)
		}
		if len(members) > 0 {
			sets[spec.Name] = members
		}
	}
	out.WriteString(sets.Save(v1.IPv4Protocol))
	out.WriteString("# iptables-restore\n")
	restores := b.ipt.Restores()
	out.Write(restores[len(restores)-1])
	return out.Bytes()
}

// TestStatusDigestsTheKernelState checks IPVS mode's part of the engine contract
// (proxy.AppliedDigest): after full and partial syncs, the digest is the SHA-256 of a
// canonical text of what the kernel holds — built here from the fake kernel, not
// from the Proxier — and its generation is the applied snapshot's.
//
// mutation-checked: leaving the real servers' weights out of AppliedText fails
// "endpoint drained"; not keeping the companion rules (p.rules) fails "first sync".
func TestStatusDigestsTheKernelState(t *testing.T) {
	b := newBed()
	p := b.proxier(t)
	w := newWorld()
	web := port("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.NodePort = 30080 })
	dns := port("dns", "10.96.0.53", func(sp *endpoints.ServicePort) {
		sp.Name.Protocol = v1.ProtocolUDP
		sp.Port = 53
	})
	if got := p.Status().Digest; got.SHA256 != "" {
		t.Errorf("digest before any sync = %+v, want none", got)
	}
	var digests []string
	for _, step := range []struct {
		name     string
		change   func()
		wantFull bool
	}{
		{"first sync", func() { w.set(web, ep("10.244.2.1")); w.set(dns, ep("10.244.2.5")) }, true},
		{"endpoint added", func() { w.set(web, ep("10.244.2.1"), ep("10.244.2.2")) }, false},
		{"endpoint drained", func() { w.set(web, ep("10.244.2.2")) }, false},
		{"service deleted", func() { w.remove(dns.Name) }, false},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			snap := w.snapshot()
			mustSync(t, p, snap, step.wantFull)
			want := b.kernelText(t)
			if diff := cmp.Diff(string(want), string(p.AppliedText())); diff != "" {
				t.Errorf("applied text (-kernel +proxier):\n%s", diff)
			}
			st := p.Status()
			sum := sha256.Sum256(want)
			if st.Digest.SHA256 != hex.EncodeToString(sum[:]) || st.Digest.Bytes != len(want) || st.Digest.Generation != snap.Generation {
				t.Errorf("digest %+v, want sha256 %x of %d bytes, generation %d", st.Digest, sum, len(want), snap.Generation)
			}
			if st.Applied != snap || st.NextFullReason != "" {
				t.Errorf("status: applied %v, next full %q; want generation %d and none", st.Applied, st.NextFullReason, snap.Generation)
			}
			if slices.Contains(digests, st.Digest.SHA256) {
				t.Errorf("the digest repeats an earlier step's though the kernel changed")
			}
			digests = append(digests, st.Digest.SHA256)
		})
	}
	p.RequestFullSync("asked")
	if got := p.Status().NextFullReason; got != "asked" {
		t.Errorf("next full sync reason %q, want %q", got, "asked")
	}
}
