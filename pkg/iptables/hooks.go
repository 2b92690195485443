package iptables

import "github.com/switchyard-io/switchyard/pkg/xtables"

func hook(table xtables.Table, chain xtables.Chain, target, comment string, newOnly bool) xtables.Hook {
	var args []string
	if newOnly {
		args = append(args, "-m", "conntrack", "--ctstate", "NEW")
	}
	if comment != "" {
		args = append(args, "-m", "comment", "--comment", comment)
	}
	args = append(args, "-j", target)
	return xtables.Hook{Table: table, Chain: chain, Target: xtables.Chain(target), Args: args}
}

// Hooks returns kube-proxy's jumps from the built-in chains, in the order kube-proxy
// ensures them (each is inserted at position 1).
func Hooks(cfg *Config) []xtables.Hook {
	hooks := []xtables.Hook{
		hook("filter", "INPUT", ChainExternalServices, "kubernetes externally-visible service portals", true),
		hook("filter", "FORWARD", ChainExternalServices, "kubernetes externally-visible service portals", true),
		hook("filter", "INPUT", ChainNodePorts, "kubernetes health check service ports", false),
		hook("filter", "FORWARD", ChainServices, "kubernetes service portals", true),
		hook("filter", "OUTPUT", ChainServices, "kubernetes service portals", true),
		hook("filter", "FORWARD", ChainForward, "kubernetes forwarding rules", false),
		hook("filter", "INPUT", ChainProxyFirewall, "kubernetes load balancer firewall", true),
		hook("filter", "OUTPUT", ChainProxyFirewall, "kubernetes load balancer firewall", true),
		hook("filter", "FORWARD", ChainProxyFirewall, "kubernetes load balancer firewall", true),
		hook("nat", "OUTPUT", ChainServices, "kubernetes service portals", false),
		hook("nat", "PREROUTING", ChainServices, "kubernetes service portals", false),
		hook("nat", "POSTROUTING", ChainPostrouting, "kubernetes postrouting rules", false),
	}
	if cfg.localhostFirewall() {
		hooks = append(hooks,
			hook("filter", "INPUT", ChainKubeletFirewall, "", false),
			hook("filter", "OUTPUT", ChainKubeletFirewall, "", false))
	}
	return hooks
}

func (c *Config) localhostFirewall() bool {
	return c.LocalhostNodePorts && c.Family == "IPv4"
}
