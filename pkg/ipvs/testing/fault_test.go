package testing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

// faultCase is one operation of one fake: setup builds a fake in a state where call
// succeeds; state prints what the fake holds; changes says whether a successful call
// changes that.
type faultCase struct {
	fake    string
	op      string
	setup   func(t *testing.T) (fake interface{ FailNext(string, error) }, call func() error, state func() string)
	changes bool
}

var (
	faultKey  = ipvs.Key{Addr: netip.MustParseAddr("10.96.0.1"), Port: 80, Protocol: v1.ProtocolTCP}
	faultReal = ipvs.RealServer{Addr: netip.MustParseAddrPort("10.244.1.1:8080"), Weight: 1}
	faultIP   = netip.MustParseAddr("10.96.0.1")
)

func ipvsCase(op string, changes bool, call func(*IPVS) error) faultCase {
	return faultCase{fake: "IPVS", op: op, changes: changes, setup: func(t *testing.T) (interface{ FailNext(string, error) }, func() error, func() string) {
		f := NewIPVS()
		must(t, f.AddVirtualServer(ipvs.VirtualServer{Key: faultKey, Scheduler: "rr"}))
		must(t, f.AddRealServer(faultKey, faultReal))
		state := func() string { return f.Dump() + fmt.Sprint(f.Timeouts()) }
		return f, func() error { return call(f) }, state
	}}
}

func linksCase(op string, changes bool, call func(*Links) error) faultCase {
	return faultCase{fake: "Links", op: op, changes: changes, setup: func(t *testing.T) (interface{ FailNext(string, error) }, func() error, func() string) {
		f := NewLinks()
		must(t, f.EnsureDummy("kube-ipvs0"))
		must(t, f.AddAddress("kube-ipvs0", faultIP))
		state := func() string {
			addrs, _ := f.Addresses("kube-ipvs0")
			return fmt.Sprint(f.Exists("kube-ipvs0"), f.Exists("dummy1"), addrs)
		}
		return f, func() error { return call(f) }, state
	}}
}

func ipsetsCase(op string, changes bool, call func(*IPSets) error) faultCase {
	return faultCase{fake: "IPSets", op: op, changes: changes, setup: func(t *testing.T) (interface{ FailNext(string, error) }, func() error, func() string) {
		f := NewIPSets()
		must(t, f.Restore(context.Background(), []byte("create KUBE-CLUSTER-IP hash:ip,port family inet\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:80\n")))
		state := func() string {
			entries, _ := f.Entries(context.Background(), "KUBE-CLUSTER-IP")
			return fmt.Sprint(f.Names(), entries)
		}
		return f, func() error { return call(f) }, state
	}}
}

func sysctlCase(op string, changes bool, call func(*Sysctl) error) faultCase {
	return faultCase{fake: "Sysctl", op: op, changes: changes, setup: func(t *testing.T) (interface{ FailNext(string, error) }, func() error, func() string) {
		f := NewSysctl()
		state := func() string { v, _ := f.Get("net/ipv4/ip_forward"); return v }
		return f, func() error { return call(f) }, state
	}}
}

var faultCases = []faultCase{
	ipvsCase("VirtualServers", false, func(f *IPVS) error { _, err := f.VirtualServers(); return err }),
	ipvsCase("AddVirtualServer", true, func(f *IPVS) error {
		return f.AddVirtualServer(ipvs.VirtualServer{Key: ipvs.Key{Addr: faultKey.Addr, Port: 81, Protocol: v1.ProtocolTCP}, Scheduler: "rr"})
	}),
	ipvsCase("UpdateVirtualServer", true, func(f *IPVS) error {
		return f.UpdateVirtualServer(ipvs.VirtualServer{Key: faultKey, Scheduler: "lc"})
	}),
	ipvsCase("DeleteVirtualServer", true, func(f *IPVS) error { return f.DeleteVirtualServer(faultKey) }),
	ipvsCase("RealServers", false, func(f *IPVS) error { _, err := f.RealServers(faultKey); return err }),
	ipvsCase("AddRealServer", true, func(f *IPVS) error {
		return f.AddRealServer(faultKey, ipvs.RealServer{Addr: netip.MustParseAddrPort("10.244.1.2:8080"), Weight: 1})
	}),
	ipvsCase("UpdateRealServer", true, func(f *IPVS) error {
		return f.UpdateRealServer(faultKey, ipvs.RealServer{Addr: faultReal.Addr, Weight: 0})
	}),
	ipvsCase("DeleteRealServer", true, func(f *IPVS) error { return f.DeleteRealServer(faultKey, faultReal.Addr) }),
	ipvsCase("SetTimeouts", true, func(f *IPVS) error { return f.SetTimeouts(ipvs.Timeouts{TCP: 900e9}) }),
	linksCase("EnsureDummy", true, func(f *Links) error { return f.EnsureDummy("dummy1") }),
	linksCase("DeleteLink", true, func(f *Links) error { return f.DeleteLink("kube-ipvs0") }),
	linksCase("Addresses", false, func(f *Links) error { _, err := f.Addresses("kube-ipvs0"); return err }),
	linksCase("AddAddress", true, func(f *Links) error { return f.AddAddress("kube-ipvs0", netip.MustParseAddr("10.96.0.2")) }),
	linksCase("DeleteAddress", true, func(f *Links) error { return f.DeleteAddress("kube-ipvs0", faultIP) }),
	ipsetsCase("Restore", true, func(f *IPSets) error {
		return f.Restore(context.Background(), []byte("add KUBE-CLUSTER-IP 10.96.0.2,tcp:80\n"))
	}),
	ipsetsCase("Entries", false, func(f *IPSets) error {
		_, err := f.Entries(context.Background(), "KUBE-CLUSTER-IP")
		return err
	}),
	ipsetsCase("Destroy", true, func(f *IPSets) error { return f.Destroy(context.Background(), "KUBE-CLUSTER-IP") }),
	sysctlCase("Get", false, func(f *Sysctl) error { _, err := f.Get("net/ipv4/ip_forward"); return err }),
	sysctlCase("Set", true, func(f *Sysctl) error { return f.Set("net/ipv4/ip_forward", "1") }),
}

// TestFailNextOnEveryOperation injects a failure into every method of every IPVS-mode
// fake and checks that the call returns it having changed nothing, and that the same
// call then succeeds (and, for a changing method, takes effect).
func TestFailNextOnEveryOperation(t *testing.T) {
	tested := map[string][]string{}
	for _, tc := range faultCases {
		tested[tc.fake] = append(tested[tc.fake], tc.op)
		t.Run(tc.fake+"."+tc.op, func(t *testing.T) {
			fake, call, state := tc.setup(t)
			before := state()
			injected := errors.New("injected: " + tc.op)
			fake.FailNext(tc.op, injected)
			if err := call(); !errors.Is(err, injected) {
				t.Fatalf("%s with a failure injected = %v, want %v", tc.op, err, injected)
			}
			if after := state(); after != before {
				t.Fatalf("the failed %s changed the fake:\n%s", tc.op, cmp.Diff(before, after))
			}
			if err := call(); err != nil {
				t.Fatalf("%s after the injected failure: %v", tc.op, err)
			}
			if changed := state() != before; changed != tc.changes {
				t.Errorf("%s succeeded; changed the fake = %v, want %v", tc.op, changed, tc.changes)
			}
		})
	}
	// Every method of the kernel interfaces has a case.
	for fake, methods := range map[string][]string{
		"IPVS":   methodsOf[ipvs.Interface](),
		"Links":  methodsOf[ipvs.Links](),
		"IPSets": methodsOf[ipvs.IPSets](),
		"Sysctl": methodsOf[ipvs.Sysctl](),
	} {
		slices.Sort(tested[fake])
		if diff := cmp.Diff(methods, tested[fake]); diff != "" {
			t.Errorf("%s: methods without a fault case (-interface +tested):\n%s", fake, diff)
		}
	}
}

func TestFailNextUnknownOperation(t *testing.T) {
	f := NewLinks()
	f.FailNext("EnsureDumy", errors.New("typo"))
	if err := f.EnsureDummy("kube-ipvs0"); err == nil || !strings.Contains(err.Error(), "unknown operation") {
		t.Errorf("EnsureDummy after a misspelt FailNext = %v, want an error naming it", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
