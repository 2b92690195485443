//go:build vmguest && linux

package vm

// This file is built only into the guest test binary (go test -c -tags vmguest, see
// TestIPVSInGuest) and runs inside the VM, where the kernel has IPVS. It refuses to run
// anywhere else: programming IPVS on a developer's machine would disturb its networking.

import (
	"net"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/ipvs"
)

func TestGuestIPVS(t *testing.T) {
	if os.Getenv(GuestEnv) != "1" {
		t.Skipf("%s is not set: this test programs IPVS and runs only inside the VM", GuestEnv)
	}
	handle, err := ipvs.New("")
	if err != nil {
		t.Fatalf("ipvs.New: %v", err)
	}
	defer handle.Close()

	svc := &ipvs.Service{
		AddressFamily: syscall.AF_INET,
		Protocol:      syscall.IPPROTO_TCP,
		Address:       net.ParseIP("10.0.0.1"),
		Port:          80,
		SchedName:     ipvs.RoundRobin,
		Netmask:       0xffffffff,
	}
	if err := handle.NewService(svc); err != nil {
		t.Fatalf("NewService: %v", err)
	}
	wantReal := []string{"10.1.0.1:8080", "10.1.0.2:8080"}
	for _, hostPort := range wantReal {
		host, _, _ := strings.Cut(hostPort, ":")
		dst := &ipvs.Destination{
			AddressFamily:   syscall.AF_INET,
			Address:         net.ParseIP(host),
			Port:            8080,
			Weight:          1,
			ConnectionFlags: ipvs.ConnectionFlagMasq,
		}
		if err := handle.NewDestination(svc, dst); err != nil {
			t.Fatalf("NewDestination %s: %v", hostPort, err)
		}
	}

	// moby/ipvs logs and returns nil when IPVS is missing, so only a read-back proves anything.
	services, err := handle.GetServices()
	if err != nil {
		t.Fatalf("GetServices: %v", err)
	}
	if len(services) != 1 {
		t.Fatalf("GetServices returned %d services, want 1", len(services))
	}
	got := services[0]
	if !got.Address.Equal(svc.Address) || got.Port != 80 || got.Protocol != syscall.IPPROTO_TCP || got.SchedName != "rr" {
		t.Errorf("service read back as %s:%d proto %d sched %q, want 10.0.0.1:80 proto tcp sched rr",
			got.Address, got.Port, got.Protocol, got.SchedName)
	}
	dests, err := handle.GetDestinations(got)
	if err != nil {
		t.Fatalf("GetDestinations: %v", err)
	}
	var gotReal []string
	for _, d := range dests {
		gotReal = append(gotReal, net.JoinHostPort(d.Address.String(), "8080"))
		if d.Port != 8080 || d.Weight != 1 || d.ConnectionFlags&ipvs.ConnFwdMask != ipvs.ConnectionFlagMasq {
			t.Errorf("real server %s read back with port %d weight %d flags %#x, want 8080, 1, masq",
				d.Address, d.Port, d.Weight, d.ConnectionFlags)
		}
	}
	sort.Strings(gotReal)
	if strings.Join(gotReal, ",") != strings.Join(wantReal, ",") {
		t.Errorf("real servers = %v, want %v", gotReal, wantReal)
	}

	// The kernel's own view agrees.
	procIPVS, err := os.ReadFile("/proc/net/ip_vs")
	if err != nil {
		t.Fatalf("reading /proc/net/ip_vs: %v", err)
	}
	for _, want := range []string{"TCP  0A000001:0050 rr", "-> 0A010001:1F90      Masq    1", "-> 0A010002:1F90      Masq    1"} {
		if !strings.Contains(string(procIPVS), want) {
			t.Errorf("/proc/net/ip_vs lacks %q:\n%s", want, procIPVS)
		}
	}
	t.Logf("/proc/net/ip_vs:\n%s", procIPVS)

	if err := handle.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if services, err := handle.GetServices(); err != nil || len(services) != 0 {
		t.Errorf("after Flush: %d services, err %v; want none", len(services), err)
	}
}
