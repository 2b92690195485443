package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/sysctl"
)

// sysctlRouteLocalnet lets IPv4 packets to 127.0.0.0/8 be routed off the loopback
// interface, which DNAT of localhost node ports needs (kubernetes#90259).
const sysctlRouteLocalnet = "net/ipv4/conf/all/route_localnet"

// NodeState is what initNode found in the kernel that the rules depend on.
type NodeState struct {
	// TCPBeLiberal is true when nf_conntrack_tcp_be_liberal is non-zero: then the
	// ctstate INVALID drop rule is not written (kubernetes PR 120412). Like
	// kube-proxy, it is read from the kernel, so a value set by someone else counts.
	TCPBeLiberal bool
}

// nodeKernel is the kernel initNode writes to; tests replace it with fakes.
type nodeKernel struct {
	procSys, conntrackModule sysctl.Interface
	cpus                     int
}

func realNodeKernel() nodeKernel {
	return nodeKernel{procSys: sysctl.Proc, conntrackModule: sysctl.ConntrackModule, cpus: conntrack.NumCPU()}
}

// initNode applies the node settings that need full privileges, as kube-proxy does
// before it programs any rule: the conntrack sysctls (--conntrack-*), and
// route_localnet=1 when IPv4 localhost node ports are on. Run calls it first; with
// --init-only it is all Run does, for an init container. An error is fatal, as in
// kube-proxy v1.37 ("could not set conntrack parameters").
func initNode(ctx context.Context, cfg *Config, kernel nodeKernel) (NodeState, error) {
	logger := klog.FromContext(ctx)
	var state NodeState
	changes, err := cfg.Conntrack.settings().Apply(kernel.procSys, kernel.conntrackModule, kernel.cpus)
	for _, ch := range changes {
		logger.Info("Set sysctl", "entry", ch.Name, "value", ch.Value)
	}
	if err != nil {
		if sysctl.IsReadOnly(err) {
			err = fmt.Errorf("%w (read-only in this container or network namespace; set the option to 0 to leave the kernel's value)", err)
		}
		return state, fmt.Errorf("could not set conntrack parameters from the configuration: %w", err)
	}
	if cfg.localhostNodePorts() {
		logger.Info("Setting route_localnet=1 to allow node-ports on localhost; to change this either disable iptables.localhostNodePorts (--iptables-localhost-nodeports) or set nodePortAddresses (--nodeport-addresses) to filter loopback addresses")
		if _, err := sysctl.Ensure(kernel.procSys, sysctlRouteLocalnet, 1); err != nil {
			return state, err
		}
	}
	if v, err := kernel.procSys.Get(conntrack.SysctlTCPBeLiberal); err == nil && v != 0 {
		state.TCPBeLiberal = true
		logger.Info("nf_conntrack_tcp_be_liberal set, not installing DROP rules for INVALID packets")
	}
	return state, nil
}

// settings converts the configuration to the conntrack package's form.
func (c *ConntrackConfig) settings() conntrack.Settings {
	s := conntrack.Settings{
		TCPBeLiberal:     c.TCPBeLiberal,
		UDPTimeout:       c.UDPTimeout,
		UDPStreamTimeout: c.UDPStreamTimeout,
	}
	if c.MaxPerCore != nil {
		s.MaxPerCore = int(*c.MaxPerCore)
	}
	if c.Min != nil {
		s.Min = int(*c.Min)
	}
	if c.TCPEstablishedTimeout != nil {
		s.TCPEstablishedTimeout = *c.TCPEstablishedTimeout
	}
	if c.TCPCloseWaitTimeout != nil {
		s.TCPCloseWaitTimeout = *c.TCPCloseWaitTimeout
	}
	return s
}

// validate checks the conntrack settings as kube-proxy's validation does: no negative
// value.
func (c *ConntrackConfig) validate() error {
	var errs []error
	for _, v := range []struct {
		flag  string
		value *int32
	}{{"--conntrack-max-per-core", c.MaxPerCore}, {"--conntrack-min", c.Min}} {
		if v.value != nil && *v.value < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must be greater than or equal to 0", v.flag, *v.value))
		}
	}
	for _, v := range []struct {
		flag  string
		value *time.Duration
	}{
		{"--conntrack-tcp-timeout-established", c.TCPEstablishedTimeout},
		{"--conntrack-tcp-timeout-close-wait", c.TCPCloseWaitTimeout},
		{"--conntrack-udp-timeout", &c.UDPTimeout},
		{"--conntrack-udp-timeout-stream", &c.UDPStreamTimeout},
	} {
		if v.value != nil && *v.value < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be greater than or equal to 0", v.flag, *v.value))
		}
	}
	return errors.Join(errs...)
}
