package testing

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

func TestIPVSIsStrict(t *testing.T) {
	f := NewIPVS()
	k := ipvs.Key{Addr: netip.MustParseAddr("10.96.0.1"), Port: 80, Protocol: v1.ProtocolTCP}
	rs := ipvs.RealServer{Addr: netip.MustParseAddrPort("10.244.1.1:8080"), Weight: 1}
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"real server on a missing service", func() error { return f.AddRealServer(k, rs) }, syscall.ESRCH},
		{"add", func() error { return f.AddVirtualServer(ipvs.VirtualServer{Key: k, Scheduler: "rr"}) }, nil},
		{"add twice", func() error { return f.AddVirtualServer(ipvs.VirtualServer{Key: k, Scheduler: "rr"}) }, syscall.EEXIST},
		{"unknown scheduler", func() error { return f.UpdateVirtualServer(ipvs.VirtualServer{Key: k, Scheduler: "fastest"}) }, syscall.ENOENT},
		{"persistent without timeout", func() error {
			return f.UpdateVirtualServer(ipvs.VirtualServer{Key: k, Scheduler: "rr", Flags: ipvs.FlagPersistent})
		}, syscall.EINVAL},
		{"add real", func() error { return f.AddRealServer(k, rs) }, nil},
		{"add real twice", func() error { return f.AddRealServer(k, rs) }, syscall.EEXIST},
		{"IPv6 real server on an IPv4 service", func() error {
			return f.AddRealServer(k, ipvs.RealServer{Addr: netip.MustParseAddrPort("[fd00::1]:80"), Weight: 1})
		}, syscall.EAFNOSUPPORT},
		{"update a missing real server", func() error {
			return f.UpdateRealServer(k, ipvs.RealServer{Addr: netip.MustParseAddrPort("10.244.1.2:8080")})
		}, syscall.ENOENT},
		{"delete real", func() error { return f.DeleteRealServer(k, rs.Addr) }, nil},
		{"delete real again", func() error { return f.DeleteRealServer(k, rs.Addr) }, syscall.ENOENT},
		{"delete service", func() error { return f.DeleteVirtualServer(k) }, nil},
		{"delete service again", func() error { return f.DeleteVirtualServer(k) }, syscall.ESRCH},
	}
	for _, s := range steps {
		err := s.do()
		if (s.want == nil) != (err == nil) || (s.want != nil && !errors.Is(err, s.want)) {
			t.Errorf("%s: err = %v, want %v", s.name, err, s.want)
		}
	}
	want := []string{"add-vs TCP/10.96.0.1:80 rr", "add-rs TCP/10.96.0.1:80 10.244.1.1:8080 w1",
		"del-rs TCP/10.96.0.1:80 10.244.1.1:8080", "del-vs TCP/10.96.0.1:80"}
	if diff := cmp.Diff(want, f.Ops()); diff != "" {
		t.Errorf("only successful changes are recorded (-want +got):\n%s", diff)
	}
}

func TestIPSetsRestore(t *testing.T) {
	f := NewIPSets()
	ctx := context.Background()
	ok := "create A hash:ip,port family inet hashsize 1024 maxelem 65536\n" +
		"create P bitmap:port range 0-65535\n" +
		"create T hash:ip,port family inet hashsize 1024 maxelem 65536\n" +
		"add T 10.96.0.1,tcp:80\nadd P 30080\nswap T A\ndestroy T\nadd A 10.96.0.2,udp:53 -exist\n"
	if err := f.Restore(ctx, []byte(ok)); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Entries(ctx, "A")
	if diff := cmp.Diff([]string{"10.96.0.1,tcp:80", "10.96.0.2,udp:53"}, got); diff != "" {
		t.Errorf("A (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ line, wantErr string }{
		{"add A 10.96.0.1,tcp:80", "already added"},
		{"del A 10.96.0.9,tcp:80", "not in A"},
		{"add A 10.96.0.1", "does not fit hash:ip,port"},
		{"add A fd00::1,tcp:80", "not of family inet"},
		{"add A 10.96.0.1,icmp:80", "bad proto:port"},
		{"add P 70000", "bad port"},
		{"add Z 1", "does not exist"},
		{"swap A P", "different types"},
		{"create A hash:ip,port family inet", "already exists"},
		{"create B hash:mac", "unknown set type"},
		{"create " + strings.Repeat("N", 32) + " hash:ip", "longer than 31"},
	} {
		err := f.Restore(ctx, []byte(tc.line+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: err = %v, want %q", tc.line, err, tc.wantErr)
		}
	}
	// A failing line stops the restore; earlier lines stay applied, as with ipset.
	err := f.Restore(ctx, []byte("add A 10.96.0.3,tcp:80\nadd A bogus\nadd A 10.96.0.4,tcp:80\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want a failure on line 2", err)
	}
	got, _ = f.Entries(ctx, "A")
	if diff := cmp.Diff([]string{"10.96.0.1,tcp:80", "10.96.0.2,udp:53", "10.96.0.3,tcp:80"}, got); diff != "" {
		t.Errorf("A after a failed restore (-want +got):\n%s", diff)
	}
}

func TestLinksAreStrict(t *testing.T) {
	f := NewLinks(netip.MustParseAddr("192.168.0.1"))
	ip := netip.MustParseAddr("10.96.0.1")
	if err := f.AddAddress("kube-ipvs0", ip); !errors.Is(err, ipvs.ErrNoLink) {
		t.Errorf("address on a missing link: %v", err)
	}
	if err := f.EnsureDummy("eth0"); err == nil {
		t.Errorf("eth0 is not a dummy; EnsureDummy must refuse it")
	}
	_ = f.EnsureDummy("kube-ipvs0")
	if err := f.AddAddress("kube-ipvs0", ip); err != nil {
		t.Fatal(err)
	}
	if err := f.AddAddress("kube-ipvs0", ip); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("adding twice: %v", err)
	}
	if err := f.DeleteAddress("kube-ipvs0", netip.MustParseAddr("10.96.0.2")); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("removing a missing address: %v", err)
	}
}
