package kubeproxyconfig

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
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

// mapStringBool is --feature-gates: "A=true,B=false", merged into the map.
type mapStringBool struct{ m *map[string]bool }

func (v mapStringBool) String() string {
	var pairs []string
	for k, b := range *v.m {
		pairs = append(pairs, k+"="+strconv.FormatBool(b))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// Set implements pflag.Value.
func (v mapStringBool) Set(s string) error {
	if *v.m == nil {
		*v.m = map[string]bool{}
	}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		key, value, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("missing bool value for %s", pair)
		}
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("invalid value of %s: %s, err: %w", key, value, err)
		}
		(*v.m)[strings.TrimSpace(key)] = b
	}
	return nil
}

// Type implements pflag.Value.
func (mapStringBool) Type() string { return "mapStringBool" }
