package controller

import (
	"errors"
	"fmt"

	"github.com/switchyard-io/switchyard/pkg/node"
)

// familyOptions gathers the flags that shape the per-family rules of both modes.
func (c *Config) familyOptions() node.Options {
	mode, _ := node.ParseLocalMode(c.DetectLocal.Mode) // Validate refused bad modes
	return node.Options{
		ClusterCIDRs:        c.ClusterCIDRs,
		DetectLocalMode:     mode,
		BridgeInterface:     c.DetectLocal.BridgeInterface,
		InterfaceNamePrefix: c.DetectLocal.InterfaceNamePrefix,
		NodePortAddresses:   c.NodePortAddresses,
		MasqueradeAll:       c.MasqueradeAll,
		MasqueradeBit:       c.MasqueradeBit,
	}
}

// localhostNodePorts reports whether IPv4 node ports answer on 127.0.0.0/8: asked for,
// and the node-port addresses include loopback, as kube-proxy decides in NewProxier.
// IPVS mode never serves them.
func (c *Config) localhostNodePorts() bool {
	return c.LocalhostNodePorts && c.Mode == "iptables" && node.NodePortsIncludeIPv4Loopback(c.NodePortAddresses)
}

// validateDatapath checks the settings of masquerading, local-traffic detection,
// node-port addresses and conntrack, with kube-proxy's rules.
func (c *Config) validateDatapath() error {
	var errs []error
	if c.MasqueradeBit < 0 || c.MasqueradeBit > 31 {
		errs = append(errs, fmt.Errorf("--iptables-masquerade-bit %d: must be within [0, 31]", c.MasqueradeBit))
	}
	mode, err := node.ParseLocalMode(c.DetectLocal.Mode)
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case mode == node.LocalModeBridgeInterface && c.DetectLocal.BridgeInterface == "":
		errs = append(errs, errors.New("--detect-local-mode BridgeInterface needs --pod-bridge-interface"))
	case mode == node.LocalModeInterfaceNamePrefix && c.DetectLocal.InterfaceNamePrefix == "":
		errs = append(errs, errors.New("--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix"))
	}
	if err := node.ValidateNodePortAddresses("--nodeport-addresses", c.NodePortAddresses); err != nil {
		errs = append(errs, err)
	}
	if err := c.Conntrack.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
