// Package nfacct manages the kernel's extended accounting objects (nfnetlink_acct):
// named packet and byte counters that iptables rules feed with "-m nfacct
// --nfacct-name NAME". kube-proxy v1.37 counts INVALID drops and localhost node-port
// packets this way and exports the counts as metrics. Objects belong to a network
// namespace; the netlink implementation acts on the calling thread's.
package nfacct

import (
	"errors"
	"fmt"
)

// Counter names kube-proxy v1.37 uses (pkg/proxy/metrics), and the metrics that
// export them.
const (
	// CounterInvalidDropped counts packets KUBE-FORWARD drops as ctstate INVALID;
	// exported as kubeproxy_iptables_ct_state_invalid_dropped_packets_total.
	CounterInvalidDropped = "ct_state_invalid_dropped_pkts"
	// CounterLocalhostNodePorts counts packets to node ports on 127.0.0.0/8;
	// exported as kubeproxy_iptables_localhost_nodeports_accepted_packets_total.
	CounterLocalhostNodePorts = "localhost_nps_accepted_pkts"
)

// MaxNameLength is the longest object name the kernel accepts (NFACCT_NAME_MAX - 1).
const MaxNameLength = 31

// Counter is an accounting object's value.
type Counter struct {
	Name           string
	Packets, Bytes uint64
}

// Interface creates and reads accounting objects.
type Interface interface {
	// Ensure creates the object if it does not exist.
	Ensure(name string) error
	// Get reads an object; ErrNotFound if it does not exist.
	Get(name string) (Counter, error)
}

var (
	// ErrNotFound is returned for an object that does not exist.
	ErrNotFound = errors.New("nfacct object not found")
	// ErrNotSupported is returned when the kernel has no nfnetlink_acct.
	ErrNotSupported = errors.New("nfacct subsystem not available")
	// ErrNameTooLong is returned for a name over MaxNameLength.
	ErrNameTooLong = errors.New("nfacct object name longer than 31 characters")
	// ErrNameEmpty is returned for an empty name.
	ErrNameEmpty = errors.New("nfacct object name is empty")
)

// CheckName returns ErrNameEmpty or ErrNameTooLong, naming the name, for a name the
// kernel would refuse.
func CheckName(name string) error {
	switch {
	case name == "":
		return ErrNameEmpty
	case len(name) > MaxNameLength:
		return fmt.Errorf("%q: %w", name, ErrNameTooLong)
	}
	return nil
}
