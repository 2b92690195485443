//go:build !linux

package ipvs

import (
	"errors"
	"net/netip"
)

var errNotLinux = errors.New("IPVS mode needs Linux")

// NewIPVS fails: IPVS exists only on Linux.
func NewIPVS() (Interface, error) { return nil, errNotLinux }

// NewLinks returns a Links whose every call fails: dummy links exist only on Linux.
func NewLinks() Links { return noLinks{} }

type noLinks struct{}

func (noLinks) EnsureDummy(string) error               { return errNotLinux }
func (noLinks) DeleteLink(string) error                { return errNotLinux }
func (noLinks) Addresses(string) ([]netip.Addr, error) { return nil, errNotLinux }
func (noLinks) AddAddress(string, netip.Addr) error    { return errNotLinux }
func (noLinks) DeleteAddress(string, netip.Addr) error { return errNotLinux }
