package kubeproxyconfig

import (
	"fmt"
	"net"
	"net/netip"
)

// ipValue is kube-proxy's --bind-address: an IP address; an empty value leaves the
// current one.
type ipValue struct{ val *string }

func (v ipValue) String() string { return *v.val }

// Set implements pflag.Value.
func (v ipValue) Set(s string) error {
	if s == "" {
		return nil
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return fmt.Errorf("%q is not a valid IP address", s)
	}
	*v.val = s
	return nil
}

// Type implements pflag.Value.
func (ipValue) Type() string { return "ip" }

// ipPortValue is kube-proxy's --healthz-bind-address and --metrics-bind-address: an IP
// or IP:port; an empty value leaves the current one, as in kube-proxy (so neither
// server can be turned off with an empty flag; --healthz-port=0 turns /healthz off).
type ipPortValue struct{ val *string }

func (v ipPortValue) String() string { return *v.val }

// Set implements pflag.Value.
func (v ipPortValue) Set(s string) error {
	if s == "" {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		*v.val = s
		return nil
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not in a valid format (ip or ip:port): %w", s, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q is not a valid IP address", host)
	}
	*v.val = s
	return nil
}

// Type implements pflag.Value.
func (ipPortValue) Type() string { return "ipport" }
