package conntrack

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/switchyard-io/switchyard/pkg/sysctl"
	sysctltest "github.com/switchyard-io/switchyard/pkg/sysctl/testing"
)

// TestMax pins kube-proxy's getConntrackMax. mutation-checked: returning
// MaxPerCore×cpus without comparing with Min fails "min wins".
func TestMax(t *testing.T) {
	tests := []struct {
		name               string
		perCore, min, cpus int
		want               int
	}{
		{name: "per core unset leaves it", min: 131072, cpus: 4, want: 0},
		{name: "scaled wins", perCore: 32768, min: 131072, cpus: 8, want: 262144},
		{name: "min wins", perCore: 32768, min: 131072, cpus: 2, want: 131072},
		{name: "capped at 1M", perCore: 32768, min: 131072, cpus: 64, want: 1048576},
		{name: "cap applies even above min", perCore: 32768, min: 4000000, cpus: 64, want: 1048576},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Settings{MaxPerCore: tt.perCore, Min: tt.min}).Max(tt.cpus); got != tt.want {
				t.Errorf("Max = %d, want %d", got, tt.want)
			}
		})
	}
}

// kernelDefaults are a 5.x kernel's values in the initial network namespace.
func kernelDefaults() (*sysctltest.Fake, *sysctltest.Fake) {
	proc := sysctltest.NewFake(map[string]int{
		SysctlMax:                   65536,
		SysctlTCPTimeoutEstablished: 432000,
		SysctlTCPTimeoutCloseWait:   60,
		SysctlTCPBeLiberal:          0,
		SysctlUDPTimeout:            30,
		SysctlUDPTimeoutStream:      120,
	})
	module := sysctltest.NewFake(map[string]int{ParamHashsize: 16384})
	return proc, module
}

// TestApply checks Apply against kube-proxy's conntrack.SetSysctls: nf_conntrack_max is
// only raised, hashsize follows as max/4 and is only raised, other sysctls are written
// only when they differ, and the first failure is returned. mutation-checked: writing
// hashsize = max (not max/4) fails "raise max and hashsize"; lowering max when it is
// larger (writing whenever max > 0) fails "never lower max; hashsize already large"; ignoring the read-only error fails
// "read-only nf_conntrack_max that must grow".
func TestApply(t *testing.T) {
	kubeProxyDefaults := Settings{MaxPerCore: 32768, Min: 131072, TCPEstablishedTimeout: 24 * time.Hour, TCPCloseWaitTimeout: time.Hour}
	tests := []struct {
		name      string
		settings  Settings
		cpus      int
		prepare   func(proc, module *sysctltest.Fake)
		wantWrite []string // proc writes then module writes
		wantErrno error
	}{
		{
			name:     "raise max and hashsize, set TCP timeouts",
			settings: kubeProxyDefaults, cpus: 4,
			wantWrite: []string{
				"net/netfilter/nf_conntrack_max=131072",
				"net/netfilter/nf_conntrack_tcp_timeout_established=86400",
				"net/netfilter/nf_conntrack_tcp_timeout_close_wait=3600",
				"hashsize=32768",
			},
		},
		{
			name:     "never lower max; hashsize already large",
			settings: Settings{MaxPerCore: 1000, Min: 1000}, cpus: 2,
			wantWrite: nil,
		},
		{
			name:     "everything else",
			settings: Settings{TCPBeLiberal: true, UDPTimeout: 45 * time.Second, UDPStreamTimeout: 3 * time.Minute},
			wantWrite: []string{
				"net/netfilter/nf_conntrack_tcp_be_liberal=1",
				"net/netfilter/nf_conntrack_udp_timeout=45",
				"net/netfilter/nf_conntrack_udp_timeout_stream=180",
			},
		},
		{
			name:     "unchanged values are not written, so read-only ones are fine",
			settings: Settings{TCPCloseWaitTimeout: time.Minute},
			prepare: func(proc, _ *sysctltest.Fake) {
				proc.SetReadOnly(SysctlTCPTimeoutCloseWait, syscall.EROFS)
			},
		},
		{
			name:     "read-only nf_conntrack_max that must grow (non-initial netns)",
			settings: kubeProxyDefaults, cpus: 4,
			prepare: func(proc, _ *sysctltest.Fake) {
				proc.SetReadOnly(SysctlMax, syscall.EACCES)
			},
			wantErrno: syscall.EACCES,
		},
		{
			name:     "read-only nf_conntrack_max already large enough",
			settings: kubeProxyDefaults, cpus: 1,
			prepare: func(proc, module *sysctltest.Fake) {
				_ = proc.Set(SysctlMax, 262144)
				_ = module.Set(ParamHashsize, 65536)
				proc.SetReadOnly(SysctlMax, syscall.EACCES)
			},
			wantWrite: []string{
				"net/netfilter/nf_conntrack_max=262144", // the prepare step's own write
				"net/netfilter/nf_conntrack_tcp_timeout_established=86400",
				"net/netfilter/nf_conntrack_tcp_timeout_close_wait=3600",
				"hashsize=65536",
			},
		},
		{
			name:     "read-only /sys: hashsize cannot grow, the TCP timeouts are not reached",
			settings: kubeProxyDefaults, cpus: 4,
			prepare: func(_, module *sysctltest.Fake) {
				module.SetReadOnly(ParamHashsize, syscall.EROFS)
			},
			wantWrite: []string{"net/netfilter/nf_conntrack_max=131072"},
			wantErrno: syscall.EROFS,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, module := kernelDefaults()
			if tt.prepare != nil {
				tt.prepare(proc, module)
			}
			_, err := tt.settings.Apply(proc, module, tt.cpus)
			switch {
			case tt.wantErrno == nil && err != nil:
				t.Fatalf("Apply: %v", err)
			case tt.wantErrno != nil && !errors.Is(err, tt.wantErrno):
				t.Fatalf("Apply error = %v, want %v", err, tt.wantErrno)
			case tt.wantErrno != nil && !sysctl.IsReadOnly(err):
				t.Errorf("IsReadOnly(%v) = false", err)
			}
			got := append(proc.Writes(), module.Writes()...)
			if diff := cmp.Diff(tt.wantWrite, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsReadOnly(t *testing.T) {
	for _, err := range []error{syscall.EROFS, syscall.EACCES, syscall.EPERM, fs.ErrPermission} {
		if !sysctl.IsReadOnly(err) {
			t.Errorf("IsReadOnly(%v) = false", err)
		}
	}
	if sysctl.IsReadOnly(syscall.ENOENT) {
		t.Error("IsReadOnly(ENOENT) = true")
	}
}

func TestCountCPUList(t *testing.T) {
	for list, want := range map[string]int{"0": 1, "0-3": 4, "0-3,8,10-11": 7} {
		if got, err := countCPUList(list); err != nil || got != want {
			t.Errorf("countCPUList(%q) = %d, %v; want %d", list, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1"} {
		if _, err := countCPUList(bad); err == nil {
			t.Errorf("countCPUList(%q) accepted", bad)
		}
	}
}
