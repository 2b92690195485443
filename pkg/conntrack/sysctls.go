package conntrack

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/sysctl"
)

// Sysctl names under /proc/sys that the conntrack settings write.
const (
	SysctlMax                   = "net/netfilter/nf_conntrack_max"
	SysctlTCPTimeoutEstablished = "net/netfilter/nf_conntrack_tcp_timeout_established"
	SysctlTCPTimeoutCloseWait   = "net/netfilter/nf_conntrack_tcp_timeout_close_wait"
	SysctlTCPBeLiberal          = "net/netfilter/nf_conntrack_tcp_be_liberal"
	SysctlUDPTimeout            = "net/netfilter/nf_conntrack_udp_timeout"
	SysctlUDPTimeoutStream      = "net/netfilter/nf_conntrack_udp_timeout_stream"
	// ParamHashsize is the nf_conntrack module parameter sizing the hash table.
	ParamHashsize = "hashsize"
)

// maxLimit caps MaxPerCore×cores, as kube-proxy v1.37 does, so that a machine with
// many cores does not reserve a huge table.
const maxLimit = 1048576

// Settings are kube-proxy's conntrack settings (--conntrack-*). Zero leaves the
// kernel's value.
type Settings struct {
	// MaxPerCore and Min size nf_conntrack_max; MaxPerCore 0 leaves it.
	MaxPerCore, Min int
	// TCPEstablishedTimeout and TCPCloseWaitTimeout set the TCP timeouts.
	TCPEstablishedTimeout, TCPCloseWaitTimeout time.Duration
	// TCPBeLiberal sets nf_conntrack_tcp_be_liberal=1.
	TCPBeLiberal bool
	// UDPTimeout and UDPStreamTimeout set the UDP timeouts.
	UDPTimeout, UDPStreamTimeout time.Duration
}

// Max returns the nf_conntrack_max the settings ask for on a machine with cpus cores:
// max(MaxPerCore×cpus, Min), but MaxPerCore×cpus capped at 1,048,576; 0 means leave
// it (kube-proxy's getConntrackMax).
func (s Settings) Max(cpus int) int {
	if s.MaxPerCore <= 0 {
		return 0
	}
	scaled := s.MaxPerCore * cpus
	switch {
	case scaled > maxLimit:
		return maxLimit
	case scaled > s.Min:
		return scaled
	}
	return s.Min
}

// Change is one parameter written.
type Change struct {
	Name  string
	Value int
}

// Apply writes the settings as kube-proxy's conntrack.SetSysctls does, and returns the
// parameters it changed, in order. nf_conntrack_max is only ever raised, and then the
// module's hashsize is raised to max/4 if smaller; every other sysctl is written only
// if it differs. The first error stops it and is returned: kube-proxy v1.37 treats a
// sysctl it cannot write (a read-only /sys in a container, nf_conntrack_max in a
// non-initial network namespace) as fatal, and tells the operator to set the option
// to 0 to leave the kernel's value. Nothing needs writing, nothing fails: a read-only
// nf_conntrack_max that is already large enough is fine.
func (s Settings) Apply(procSys, module sysctl.Interface, cpus int) ([]Change, error) {
	var changes []Change
	set := func(name string, value int) error {
		changed, err := sysctl.Ensure(procSys, name, value)
		if changed {
			changes = append(changes, Change{name, value})
		}
		return err
	}
	if max := s.Max(cpus); max > 0 {
		if cur, err := procSys.Get(SysctlMax); err != nil || cur < max {
			if err := set(SysctlMax, max); err != nil {
				return changes, err
			}
		}
		hashsize, err := module.Get(ParamHashsize)
		if err != nil {
			return changes, err
		}
		if hashsize < max/4 {
			if err := module.Set(ParamHashsize, max/4); err != nil {
				return changes, err
			}
			changes = append(changes, Change{ParamHashsize, max / 4})
		}
	}
	for _, t := range []struct {
		name    string
		timeout time.Duration
	}{
		{SysctlTCPTimeoutEstablished, s.TCPEstablishedTimeout},
		{SysctlTCPTimeoutCloseWait, s.TCPCloseWaitTimeout},
	} {
		if t.timeout > 0 {
			if err := set(t.name, int(t.timeout/time.Second)); err != nil {
				return changes, err
			}
		}
	}
	if s.TCPBeLiberal {
		if err := set(SysctlTCPBeLiberal, 1); err != nil {
			return changes, err
		}
	}
	for _, t := range []struct {
		name    string
		timeout time.Duration
	}{
		{SysctlUDPTimeout, s.UDPTimeout},
		{SysctlUDPTimeoutStream, s.UDPStreamTimeout},
	} {
		if t.timeout > 0 {
			if err := set(t.name, int(t.timeout/time.Second)); err != nil {
				return changes, err
			}
		}
	}
	return changes, nil
}

// NumCPU returns the node's online CPU count from /sys/devices/system/cpu/online, not
// the process's cpuset: nf_conntrack_max is host-wide, and a proxy pinned to a few
// cores must not shrink it (kube-proxy's DetectNumCPU). It falls back to
// runtime.NumCPU.
func NumCPU() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	if n, err := countCPUList(strings.TrimSpace(string(b))); err == nil && n > 0 {
		return n
	}
	return runtime.NumCPU()
}

// countCPUList counts the CPUs in a kernel CPU list such as "0-3,8,10-11".
func countCPUList(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("cpu list %q: %w", list, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("cpu list %q: bad range %q", list, part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}
