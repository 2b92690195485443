package testing

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/switchyard-io/switchyard/pkg/fault"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

type fakeLink struct {
	kind  string
	addrs []netip.Addr
}

// Links is a strict fake of ipvs.Links: adding an address twice or removing a missing
// one fails, as with the kernel. FailNext(method, err) makes the next call of one of
// its ipvs.Links methods fail with err, changing nothing.
type Links struct {
	*fault.Injector

	mu    sync.Mutex
	links map[string]*fakeLink
	ops   int
}

var _ ipvs.Links = &Links{}

// NewLinks returns a fake with one physical link, "eth0", holding the given addresses.
func NewLinks(eth0 ...netip.Addr) *Links {
	return &Links{Injector: fault.New("EnsureDummy", "DeleteLink", "Addresses", "AddAddress", "DeleteAddress"), links: map[string]*fakeLink{"eth0": {kind: "device", addrs: slices.Clone(eth0)}}}
}

// Ops returns how many changing operations were done.
func (f *Links) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// Exists reports whether a link exists.
func (f *Links) Exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.links[name]
	return ok
}

// EnsureDummy implements ipvs.Links.
func (f *Links) EnsureDummy(name string) error {
	if err := f.Take("EnsureDummy"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.links[name]; ok {
		if l.kind != "dummy" {
			return fmt.Errorf("link %s exists but is a %s, not a dummy", name, l.kind)
		}
		return nil
	}
	f.ops++
	f.links[name] = &fakeLink{kind: "dummy"}
	return nil
}

// DeleteLink implements ipvs.Links.
func (f *Links) DeleteLink(name string) error {
	if err := f.Take("DeleteLink"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[name]; ok {
		f.ops++
		delete(f.links, name)
	}
	return nil
}

// Addresses implements ipvs.Links.
func (f *Links) Addresses(name string) ([]netip.Addr, error) {
	if err := f.Take("Addresses"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[name]
	if !ok {
		return nil, fmt.Errorf("link %s: %w", name, ipvs.ErrNoLink)
	}
	out := slices.Clone(l.addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// AddAddress implements ipvs.Links.
func (f *Links) AddAddress(name string, ip netip.Addr) error {
	if err := f.Take("AddAddress"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[name]
	if !ok {
		return fmt.Errorf("link %s: %w", name, ipvs.ErrNoLink)
	}
	if !ip.IsValid() {
		return fmt.Errorf("adding an invalid address to %s: %w", name, syscall.EINVAL)
	}
	if slices.Contains(l.addrs, ip) {
		return fmt.Errorf("adding %s to %s: %w", ip, name, syscall.EEXIST)
	}
	f.ops++
	l.addrs = append(l.addrs, ip)
	return nil
}

// DeleteAddress implements ipvs.Links.
func (f *Links) DeleteAddress(name string, ip netip.Addr) error {
	if err := f.Take("DeleteAddress"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[name]
	if !ok {
		return fmt.Errorf("link %s: %w", name, ipvs.ErrNoLink)
	}
	i := slices.Index(l.addrs, ip)
	if i < 0 {
		return fmt.Errorf("removing %s from %s: %w", ip, name, syscall.EADDRNOTAVAIL)
	}
	f.ops++
	l.addrs = slices.Delete(l.addrs, i, i+1)
	return nil
}

// Sysctl is a fake ipvs.Sysctl holding the parameters IPVS mode touches, at the
// kernel's defaults; others do not exist. FailNext("Get" or "Set", err) makes the
// next such call fail with err, changing nothing.
type Sysctl struct {
	*fault.Injector

	mu     sync.Mutex
	values map[string]string
}

var _ ipvs.Sysctl = &Sysctl{}

// NewSysctl returns a fake with the kernel's defaults.
func NewSysctl() *Sysctl {
	return &Sysctl{Injector: fault.New("Get", "Set"), values: map[string]string{
		"net/ipv4/vs/conntrack":                 "0",
		"net/ipv4/vs/conn_reuse_mode":           "1",
		"net/ipv4/vs/expire_nodest_conn":        "0",
		"net/ipv4/vs/expire_quiescent_template": "0",
		"net/ipv4/ip_forward":                   "0",
		"net/ipv6/conf/all/forwarding":          "0",
		"net/ipv4/conf/all/arp_ignore":          "0",
		"net/ipv4/conf/all/arp_announce":        "0",
	}}
}

// Get implements ipvs.Sysctl.
func (f *Sysctl) Get(name string) (string, error) {
	if err := f.Take("Get"); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.values[name]
	if !ok {
		return "", fmt.Errorf("sysctl %s: %w", name, syscall.ENOENT)
	}
	return v, nil
}

// Set implements ipvs.Sysctl.
func (f *Sysctl) Set(name, value string) error {
	if err := f.Take("Set"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.values[name]; !ok {
		return fmt.Errorf("sysctl %s: %w", name, syscall.ENOENT)
	}
	f.values[name] = value
	return nil
}
