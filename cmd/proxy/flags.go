package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// stringList is a repeatable flag that also splits on commas: -f a -f b,c.
type stringList []string

// String implements pflag.Value.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Type implements pflag.Value; help shows it after the flag's name.
func (l *stringList) Type() string { return "strings" }

// Set implements pflag.Value.
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseAddrs parses a list of IP addresses, naming the flag in errors.
func parseAddrs(flagName string, values []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, v := range values {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %w", flagName, v, err)
		}
		out = append(out, ip.Unmap())
	}
	return out, nil
}

// parsePrefixes parses a list of CIDRs, naming the flag in errors.
func parsePrefixes(flagName string, values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %w", flagName, v, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
