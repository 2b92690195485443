package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/switchyard-io/switchyard/pkg/node"
)

// DummyInterface is the dummy link that holds every service VIP, as in kube-proxy: an
// address there makes the kernel deliver the VIP's packets locally, where IPVS takes
// them.
const DummyInterface = "kube-ipvs0"

// DefaultScheduler is kube-proxy's default --ipvs-scheduler.
const DefaultScheduler = "rr"

// Schedulers are the schedulers --ipvs-scheduler and the per-service annotation accept:
// those of a stock kernel that kube-proxy documents.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"}

// ValidScheduler reports whether name is one of Schedulers.
func ValidScheduler(name string) bool { return slices.Contains(Schedulers, name) }

// hashingScheduler reports whether a scheduler picks the real server from a hash of the
// client. Such schedulers do not skip a weight-0 server, so a draining real server would
// keep receiving the new connections of the clients that hash to it
// (kubernetes#121590): removed or unready endpoints are deleted at once instead.
func hashingScheduler(name string) bool { return name == "sh" || name == "mh" || name == "dh" }

// Timeouts are the kernel's IPVS connection timeouts (--ipvs-tcp-timeout,
// --ipvs-tcpfin-timeout, --ipvs-udp-timeout); zero leaves one unchanged.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// IsZero reports whether no timeout is set.
func (t Timeouts) IsZero() bool { return t.TCP == 0 && t.TCPFin == 0 && t.UDP == 0 }

// Config holds the facts about this node that the IPVS state depends on, for one IP
// family. A dual-stack node runs one Proxier per family.
type Config struct {
	node.FamilyConfig
	// Scheduler is the default scheduler (--ipvs-scheduler); empty means rr.
	Scheduler string
	// StrictARP sets arp_ignore=1 and arp_announce=2 so that the node does not answer
	// ARP for the VIPs on kube-ipvs0 (--ipvs-strict-arp), as MetalLB needs.
	StrictARP bool
	// ExcludeCIDRs are never cleaned up, even if a virtual server there looks like
	// Switchyard's (--ipvs-exclude-cidrs).
	ExcludeCIDRs []netip.Prefix
	// Timeouts are applied to the kernel at each full sync when set.
	Timeouts Timeouts
	// GracePeriod bounds graceful termination: a weight-0 TCP real server is deleted
	// after this long even if it still has connections. Zero means 15 minutes, the
	// default TCP established timeout of kube-proxy's IPVS mode.
	GracePeriod time.Duration
}

// Validate reports every problem with the Config at once.
func (c *Config) Validate() error {
	errs := []error{c.FamilyConfig.Validate()}
	if c.Scheduler != "" && !ValidScheduler(c.Scheduler) {
		errs = append(errs, fmt.Errorf("--ipvs-scheduler %q: want one of %v", c.Scheduler, Schedulers))
	}
	if c.GracePeriod < 0 {
		errs = append(errs, errors.New("negative grace period"))
	}
	return errors.Join(errs...)
}

func (c *Config) scheduler() string {
	if c.Scheduler == "" {
		return DefaultScheduler
	}
	return c.Scheduler
}

func (c *Config) gracePeriod() time.Duration {
	if c.GracePeriod == 0 {
		return 15 * time.Minute
	}
	return c.GracePeriod
}

// nodePortIPs returns the addresses that get a virtual server per node port. Loopback
// addresses are skipped, as kube-proxy's IPVS mode does: IPVS cannot masquerade from
// 127.0.0.1 to a pod.
func (c *Config) nodePortIPs() []netip.Addr {
	src := c.NodeIPs
	if c.RestrictNodePorts {
		src = c.NodePortIPs
	}
	out := make([]netip.Addr, 0, len(src))
	for _, ip := range src {
		if !ip.IsLoopback() {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// excluded reports whether ip lies in one of ExcludeCIDRs.
func (c *Config) excluded(ip netip.Addr) bool {
	for _, p := range c.ExcludeCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
