//go:build !linux

package nfacct

// Netlink is unavailable off Linux.
type Netlink struct{}

var _ Interface = Netlink{}

// Probe always fails off Linux.
func Probe() (Netlink, error) { return Netlink{}, ErrNotSupported }

// Ensure implements Interface.
func (Netlink) Ensure(string) error { return ErrNotSupported }

// Get implements Interface.
func (Netlink) Get(string) (Counter, error) { return Counter{}, ErrNotSupported }
