package iptables

// Hook is a jump from a built-in chain into one of Switchyard's chains. Hooks are not
// part of the restore payload: a restore cannot insert a rule only if it is missing, so
// the applier ensures each one separately (check, then insert at the top).
type Hook struct {
	// Table is "filter" or "nat".
	Table string
	// Chain is the built-in chain the jump lives in.
	Chain string
	// Target is Switchyard's chain it jumps to.
	Target string
	// Args are the rule's matches and jump, as iptables arguments.
	Args []string
}

func hook(table, chain, target, comment string, newOnly bool) Hook {
	var args []string
	if newOnly {
		args = append(args, "-m", "conntrack", "--ctstate", "NEW")
	}
	if comment != "" {
		args = append(args, "-m", "comment", "--comment", comment)
	}
	args = append(args, "-j", target)
	return Hook{Table: table, Chain: chain, Target: target, Args: args}
}

// Hooks returns kube-proxy's jumps from the built-in chains, in the order kube-proxy
// ensures them (each is inserted at position 1).
func Hooks(cfg *Config) []Hook {
	hooks := []Hook{
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
	// kube-proxy ensures kubelet's KUBE-FIREWALL chain and its jumps in both
	// families whatever its settings (iptablesKubeletJumpChains), and fills the chain
	// only with localhost node ports; doing the same keeps the tables identical to
	// kube-proxy's, and the chain (empty, or kubelet's) is harmless.
	hooks = append(hooks,
		hook("filter", "INPUT", ChainKubeletFirewall, "", false),
		hook("filter", "OUTPUT", ChainKubeletFirewall, "", false))
	return hooks
}

func (c *Config) localhostFirewall() bool {
	return c.LocalhostNodePorts && c.Family == "IPv4"
}
