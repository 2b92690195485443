//go:build !linux

package ipvs

import "context"

// NetlinkIPSets fails every call: ipsets exist only on Linux.
type NetlinkIPSets struct{}

// NewNetlinkIPSets returns NetlinkIPSets, whose every call fails off Linux.
func NewNetlinkIPSets() *NetlinkIPSets { return &NetlinkIPSets{} }

// Restore implements IPSets.
func (*NetlinkIPSets) Restore(context.Context, []byte) error { return errNotLinux }

// Entries implements IPSets.
func (*NetlinkIPSets) Entries(context.Context, string) ([]string, error) { return nil, errNotLinux }

// Destroy implements IPSets.
func (*NetlinkIPSets) Destroy(context.Context, string) error { return errNotLinux }
