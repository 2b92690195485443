package testing

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/fault"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

type fakeServer struct {
	vs   ipvs.VirtualServer
	real map[netip.AddrPort]*ipvs.RealServerStatus
}

// IPVS is a strict fake of ipvs.Interface. FailNext(method, err) makes the next
// call of any of its ipvs.Interface methods fail with err, changing nothing.
type IPVS struct {
	*fault.Injector

	mu      sync.Mutex
	servers map[ipvs.Key]*fakeServer
	// schedulers are the scheduler modules "loaded"; others fail like a missing module.
	schedulers []string
	timeouts   ipvs.Timeouts
	ops        []string
}

var _ ipvs.Interface = &IPVS{}

// NewIPVS returns an empty fake with every scheduler in ipvs.Schedulers available.
func NewIPVS() *IPVS {
	return &IPVS{Injector: fault.New(ipvsOperations...), servers: map[ipvs.Key]*fakeServer{}, schedulers: slices.Clone(ipvs.Schedulers)}
}

// SetSchedulers limits the schedulers the fake accepts, like a kernel with only some
// ip_vs_* modules.
func (f *IPVS) SetSchedulers(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.schedulers = slices.Clone(names)
}

// ipvsOperations are the methods of IPVS that FailNext can make fail.
var ipvsOperations = []string{"VirtualServers", "AddVirtualServer", "UpdateVirtualServer", "DeleteVirtualServer",
	"RealServers", "AddRealServer", "UpdateRealServer", "DeleteRealServer", "SetTimeouts"}

// Ops returns the changing operations done since the last ResetOps, like
// "add-rs TCP/10.96.0.1:80 10.244.1.5:8080 w1".
func (f *IPVS) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

// ResetOps forgets the recorded operations.
func (f *IPVS) ResetOps() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = nil
}

// Timeouts returns the timeouts last set.
func (f *IPVS) Timeouts() ipvs.Timeouts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timeouts
}

// SetConnections sets a real server's connection counters, as traffic would.
func (f *IPVS) SetConnections(k ipvs.Key, addr netip.AddrPort, active, inactive int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.servers[k]
	if !ok {
		return fmt.Errorf("no virtual server %s", k)
	}
	r, ok := s.real[addr]
	if !ok {
		return fmt.Errorf("no real server %s in %s", addr, k)
	}
	r.ActiveConns, r.InactiveConns = active, inactive
	return nil
}

// change records a changing operation for Ops.
func (f *IPVS) change(op string) {
	f.ops = append(f.ops, op)
}

func checkKey(k ipvs.Key) error {
	switch {
	case !k.Addr.IsValid():
		return fmt.Errorf("virtual server without address: %w", syscall.EINVAL)
	case k.Port == 0:
		return fmt.Errorf("virtual server %s without port: %w", k, syscall.EINVAL)
	case k.Protocol != v1.ProtocolTCP && k.Protocol != v1.ProtocolUDP && k.Protocol != v1.ProtocolSCTP:
		return fmt.Errorf("virtual server %s: protocol %q: %w", k, k.Protocol, syscall.EINVAL)
	}
	return nil
}

// VirtualServers implements ipvs.Interface.
func (f *IPVS) VirtualServers() ([]ipvs.VirtualServer, error) {
	if err := f.Take("VirtualServers"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]ipvs.VirtualServer, 0, len(f.servers))
	for _, s := range f.servers {
		out = append(out, s.vs)
	}
	slices.SortFunc(out, func(a, b ipvs.VirtualServer) int { return a.Key.Compare(b.Key) })
	return out, nil
}

func (f *IPVS) checkServer(vs ipvs.VirtualServer) error {
	if err := checkKey(vs.Key); err != nil {
		return err
	}
	if !slices.Contains(f.schedulers, vs.Scheduler) {
		// The kernel answers ENOENT when the scheduler module is missing.
		return fmt.Errorf("virtual server %s: scheduler %q: %w", vs.Key, vs.Scheduler, syscall.ENOENT)
	}
	if vs.Flags&ipvs.FlagPersistent != 0 && vs.Timeout == 0 {
		return fmt.Errorf("virtual server %s: persistent without timeout: %w", vs.Key, syscall.EINVAL)
	}
	return nil
}

// AddVirtualServer implements ipvs.Interface.
func (f *IPVS) AddVirtualServer(vs ipvs.VirtualServer) error {
	if err := f.Take("AddVirtualServer"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkServer(vs); err != nil {
		return err
	}
	if _, ok := f.servers[vs.Key]; ok {
		return fmt.Errorf("adding virtual server %s: %w", vs.Key, syscall.EEXIST)
	}
	f.change("add-vs " + vs.String())
	f.servers[vs.Key] = &fakeServer{vs: vs, real: map[netip.AddrPort]*ipvs.RealServerStatus{}}
	return nil
}

// UpdateVirtualServer implements ipvs.Interface.
func (f *IPVS) UpdateVirtualServer(vs ipvs.VirtualServer) error {
	if err := f.Take("UpdateVirtualServer"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkServer(vs); err != nil {
		return err
	}
	s, ok := f.servers[vs.Key]
	if !ok {
		return fmt.Errorf("updating virtual server %s: %w", vs.Key, syscall.ESRCH)
	}
	f.change("update-vs " + vs.String())
	s.vs = vs
	return nil
}

// DeleteVirtualServer implements ipvs.Interface.
func (f *IPVS) DeleteVirtualServer(k ipvs.Key) error {
	if err := f.Take("DeleteVirtualServer"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.servers[k]; !ok {
		return fmt.Errorf("deleting virtual server %s: %w", k, syscall.ESRCH)
	}
	f.change("del-vs " + k.String())
	delete(f.servers, k)
	return nil
}

// RealServers implements ipvs.Interface.
func (f *IPVS) RealServers(k ipvs.Key) ([]ipvs.RealServerStatus, error) {
	if err := f.Take("RealServers"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.servers[k]
	if !ok {
		return nil, fmt.Errorf("listing real servers of %s: %w", k, syscall.ESRCH)
	}
	out := make([]ipvs.RealServerStatus, 0, len(s.real))
	for _, addr := range slices.SortedFunc(maps.Keys(s.real), netip.AddrPort.Compare) {
		out = append(out, *s.real[addr])
	}
	return out, nil
}

func (f *IPVS) realServer(k ipvs.Key, rs ipvs.RealServer) (*fakeServer, error) {
	s, ok := f.servers[k]
	if !ok {
		return nil, fmt.Errorf("virtual server %s: %w", k, syscall.ESRCH)
	}
	if !rs.Addr.IsValid() || rs.Addr.Port() == 0 {
		return nil, fmt.Errorf("real server %q of %s: %w", rs.Addr, k, syscall.EINVAL)
	}
	if rs.Addr.Addr().Is4() != k.Addr.Is4() {
		return nil, fmt.Errorf("real server %s of %s: address family mismatch: %w", rs.Addr, k, syscall.EAFNOSUPPORT)
	}
	if rs.Weight < 0 {
		return nil, fmt.Errorf("real server %s of %s: weight %d: %w", rs.Addr, k, rs.Weight, syscall.ERANGE)
	}
	return s, nil
}

// AddRealServer implements ipvs.Interface.
func (f *IPVS) AddRealServer(k ipvs.Key, rs ipvs.RealServer) error {
	if err := f.Take("AddRealServer"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.realServer(k, rs)
	if err != nil {
		return err
	}
	if _, ok := s.real[rs.Addr]; ok {
		return fmt.Errorf("adding real server %s to %s: %w", rs.Addr, k, syscall.EEXIST)
	}
	f.change(fmt.Sprintf("add-rs %s %s w%d", k, rs.Addr, rs.Weight))
	s.real[rs.Addr] = &ipvs.RealServerStatus{RealServer: rs}
	return nil
}

// UpdateRealServer implements ipvs.Interface.
func (f *IPVS) UpdateRealServer(k ipvs.Key, rs ipvs.RealServer) error {
	if err := f.Take("UpdateRealServer"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.realServer(k, rs)
	if err != nil {
		return err
	}
	r, ok := s.real[rs.Addr]
	if !ok {
		return fmt.Errorf("updating real server %s of %s: %w", rs.Addr, k, syscall.ENOENT)
	}
	f.change(fmt.Sprintf("update-rs %s %s w%d", k, rs.Addr, rs.Weight))
	r.Weight = rs.Weight
	return nil
}

// DeleteRealServer implements ipvs.Interface.
func (f *IPVS) DeleteRealServer(k ipvs.Key, addr netip.AddrPort) error {
	if err := f.Take("DeleteRealServer"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.servers[k]
	if !ok {
		return fmt.Errorf("virtual server %s: %w", k, syscall.ESRCH)
	}
	if _, ok := s.real[addr]; !ok {
		return fmt.Errorf("deleting real server %s of %s: %w", addr, k, syscall.ENOENT)
	}
	f.change(fmt.Sprintf("del-rs %s %s", k, addr))
	delete(s.real, addr)
	return nil
}

// SetTimeouts implements ipvs.Interface.
func (f *IPVS) SetTimeouts(t ipvs.Timeouts) error {
	if err := f.Take("SetTimeouts"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.TCP < 0 || t.TCPFin < 0 || t.UDP < 0 {
		return fmt.Errorf("negative timeout: %w", syscall.EINVAL)
	}
	f.change("set-timeouts")
	if t.TCP != 0 {
		f.timeouts.TCP = t.TCP
	}
	if t.TCPFin != 0 {
		f.timeouts.TCPFin = t.TCPFin
	}
	if t.UDP != 0 {
		f.timeouts.UDP = t.UDP
	}
	return nil
}

// Dump prints the table as `ipvsadm -Sn` does, sorted.
func (f *IPVS) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range slices.SortedFunc(maps.Keys(f.servers), ipvs.Key.Compare) {
		s := f.servers[k]
		var real []ipvs.RealServer
		for _, r := range s.real {
			real = append(real, r.RealServer)
		}
		slices.SortFunc(real, func(a, b ipvs.RealServer) int { return a.Addr.Compare(b.Addr) })
		b.WriteString(ipvs.FormatIPVSAdm(s.vs, real))
	}
	return b.String()
}

// IsNotFound reports whether err is the fake's (and the kernel's) "no such object".
func IsNotFound(err error) bool {
	return errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT)
}
