package endpoints

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels and annotations that change how a Service is proxied.
const (
	// LabelServiceProxyName marks a Service as handled by another proxy: kube-proxy, and
	// so Switchyard, skips it whatever its value.
	LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"
	// LabelHeadless marks a Service as headless even if it has a cluster IP.
	LabelHeadless = "service.kubernetes.io/headless"
	// SchedulerAnnotation chooses the IPVS scheduler for one Service, overriding
	// --ipvs-scheduler. kube-proxy has no such knob (kubernetes#94350).
	SchedulerAnnotation = "switchyard.io/ipvs-scheduler"
	// defaultAffinityTimeout is the API default for clientIP.timeoutSeconds (3 hours).
	defaultAffinityTimeout = 10800
)

// SkipReason returns why kube-proxy would not program the Service at all, or "" if it
// would. ExternalName and headless Services have no virtual IP to program; labelled ones
// belong to another proxy.
func SkipReason(svc *v1.Service) string {
	switch {
	case svc.Spec.Type == v1.ServiceTypeExternalName:
		return "type ExternalName"
	case svc.Spec.ClusterIP == v1.ClusterIPNone:
		return "headless (clusterIP: None)"
	case svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) == 0:
		return "no cluster IP allocated"
	}
	if _, ok := svc.Labels[LabelServiceProxyName]; ok {
		return "labelled " + LabelServiceProxyName
	}
	if _, ok := svc.Labels[LabelHeadless]; ok {
		return "labelled " + LabelHeadless
	}
	return ""
}

// ServicePorts converts a Service into the service ports kube-proxy would program, for
// both IP families. A Service that SkipReason rejects yields none and no error.
//
// Bad values are reported, not fatal: an unparseable external IP or source range is
// dropped with an error and the rest of the Service is still converted, so that one typo
// never takes a whole Service (or the sync) down. A port that cannot be programmed at all
// (invalid number or protocol) is left out with an error. The error names the object.
func ServicePorts(svc *v1.Service) ([]*ServicePort, error) {
	if SkipReason(svc) != "" {
		return nil, nil
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	var errs []error
	fail := func(reason, format string, args ...any) {
		errs = append(errs, invalid(reason, fmt.Errorf("service %s: "+format, append([]any{key}, args...)...)))
	}
	// The names end up in rule comments: a quote, a space or a newline there would
	// make iptables-restore refuse the whole payload, every other Service's changes
	// with it. The API server only stores valid names, so this never triggers for an
	// object read from it; it keeps a manifest (dry-run) or a client that bypasses
	// validation from breaking the sync.
	if msgs := slices.Concat(validation.IsDNS1123Label(svc.Namespace), validation.IsDNS1035Label(svc.Name)); len(msgs) > 0 {
		fail(ReasonInvalidName, "invalid namespace or name: %s", strings.Join(msgs, "; "))
		return nil, errors.Join(errs...)
	}

	clusterIPs := svc.Spec.ClusterIPs
	if len(clusterIPs) == 0 {
		clusterIPs = []string{svc.Spec.ClusterIP}
	}
	var vips []netip.Addr
	for _, s := range clusterIPs {
		ip, err := parseIP(s)
		if err != nil {
			fail(ReasonInvalidClusterIP, "cluster IP %q: %w", s, err)
			continue
		}
		if slices.ContainsFunc(vips, func(o netip.Addr) bool { return FamilyOf(o) == FamilyOf(ip) }) {
			fail(ReasonInvalidClusterIP, "cluster IP %q: a second cluster IP of the same family", s)
			continue
		}
		vips = append(vips, ip)
	}
	if len(vips) == 0 {
		return nil, errors.Join(append(errs, invalid(ReasonInvalidClusterIP, fmt.Errorf("service %s: no valid cluster IP", key)))...)
	}

	var externalIPs []netip.Addr
	for _, s := range svc.Spec.ExternalIPs {
		ip, err := parseIP(s)
		if err != nil {
			fail(ReasonInvalidExternalIP, "external IP %q: %w", s, err)
			continue
		}
		if !slices.Contains(externalIPs, ip) {
			externalIPs = append(externalIPs, ip)
		}
	}

	var lbVIPs []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		// Only VIP-style load balancers deliver packets still addressed to the LB IP;
		// with ipMode Proxy the load balancer rewrites the destination itself.
		if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP) {
			continue
		}
		ip, err := parseIP(ing.IP)
		if err != nil {
			fail(ReasonInvalidLoadBalancerIP, "load-balancer ingress IP %q: %w", ing.IP, err)
			continue
		}
		if !slices.Contains(lbVIPs, ip) {
			lbVIPs = append(lbVIPs, ip)
		}
	}

	var sourceRanges []netip.Prefix
	for _, s := range svc.Spec.LoadBalancerSourceRanges {
		// The API validation accepts whitespace padding here, so kube-proxy trims it.
		prefix, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			fail(ReasonInvalidSourceRange, "loadBalancerSourceRanges %q: %w", s, err)
			continue
		}
		if prefix.Addr().Is4In6() {
			// An IPv4-mapped range is an IPv4 range written in IPv6; in IPv6 form it
			// would make iptables-restore reject the whole IPv4 table.
			if prefix.Bits() < 96 {
				fail(ReasonInvalidSourceRange, "loadBalancerSourceRanges %q: an IPv4-mapped range shorter than /96 mixes families", s)
				continue
			}
			prefix = netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96)
		}
		prefix = prefix.Masked()
		if !slices.Contains(sourceRanges, prefix) {
			sourceRanges = append(sourceRanges, prefix)
		}
	}

	externallyAccessible := svc.Spec.Type == v1.ServiceTypeNodePort ||
		svc.Spec.Type == v1.ServiceTypeLoadBalancer || len(svc.Spec.ExternalIPs) > 0
	externalLocal := externallyAccessible &&
		svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
	internalLocal := svc.Spec.InternalTrafficPolicy != nil &&
		*svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal

	var affinity int32
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		affinity = defaultAffinityTimeout
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = *c.ClientIP.TimeoutSeconds
		}
		if affinity <= 0 || affinity > 86400 {
			fail(ReasonInvalidAffinityTimeout, "sessionAffinityConfig.clientIP.timeoutSeconds %d out of range 1-86400; using %d", affinity, defaultAffinityTimeout)
			affinity = defaultAffinityTimeout
		}
	}

	var healthCheckNodePort int32
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer && externalLocal {
		healthCheckNodePort = svc.Spec.HealthCheckNodePort
		if healthCheckNodePort < 0 || healthCheckNodePort > 65535 {
			fail(ReasonInvalidHealthCheckPort, "healthCheckNodePort %d out of range", healthCheckNodePort)
			healthCheckNodePort = 0
		}
	}

	scheduler := svc.Annotations[SchedulerAnnotation]

	var ports []*ServicePort
	seen := map[ServicePortName]bool{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		protocol := sp.Protocol
		if protocol == "" {
			protocol = v1.ProtocolTCP
		}
		if protocol != v1.ProtocolTCP && protocol != v1.ProtocolUDP && protocol != v1.ProtocolSCTP {
			fail(ReasonInvalidPort, "port %q: unsupported protocol %q", sp.Name, sp.Protocol)
			continue
		}
		if sp.Name != "" {
			if msgs := validation.IsDNS1123Label(sp.Name); len(msgs) > 0 {
				fail(ReasonInvalidPort, "port name %q: %s", sp.Name, strings.Join(msgs, "; "))
				continue
			}
		}
		if sp.Port < 1 || sp.Port > 65535 {
			fail(ReasonInvalidPort, "port %q: port %d out of range 1-65535", sp.Name, sp.Port)
			continue
		}
		nodePort := sp.NodePort
		if nodePort < 0 || nodePort > 65535 {
			fail(ReasonInvalidPort, "port %q: nodePort %d out of range", sp.Name, nodePort)
			nodePort = 0
		}
		name := ServicePortName{NamespacedName: key, Port: sp.Name, Protocol: protocol}
		if seen[name] {
			fail(ReasonDuplicatePort, "port %q/%s: duplicate port name and protocol", sp.Name, protocol)
			continue
		}
		seen[name] = true
		ports = append(ports, &ServicePort{
			Name:                     name,
			Port:                     sp.Port,
			NodePort:                 nodePort,
			ClusterIPs:               vips,
			ExternalIPs:              externalIPs,
			LoadBalancerVIPs:         lbVIPs,
			LoadBalancerSourceRanges: sourceRanges,
			ExternalPolicyLocal:      externalLocal,
			InternalPolicyLocal:      internalLocal,
			HealthCheckNodePort:      healthCheckNodePort,
			AffinityTimeoutSeconds:   affinity,
			Scheduler:                scheduler,
		})
	}
	return ports, errors.Join(errs...)
}

// parseIP parses an IP address the way the API server validates it; IPv4-mapped IPv6
// addresses are unmapped so that families are told apart correctly.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, err
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("zoned address not allowed")
	}
	if ip.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("unspecified address not allowed")
	}
	return ip.Unmap(), nil
}
