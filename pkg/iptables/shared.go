package iptables

// SharedChains are the chains that hold rules of many services and that partial syncs
// edit in place (see RenderPartial): their rules may be in another order than a full
// render writes them, which changes nothing since no two of them match the same
// packets, apart from the node-ports jumps that stay last in KUBE-SERVICES.
func SharedChains() []string {
	return []string{ChainServices, ChainExternalServices, ChainNodePorts, ChainProxyFirewall}
}
