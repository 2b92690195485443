// Package ipvs is Switchyard's IPVS mode: kube-proxy's `--proxy-mode ipvs` rebuilt in the
// shape of pkg/iptables.
//
// The pure part (Render, RenderService, RenderRules, the ipset definitions) computes the
// desired state from a snapshot and the node's facts: one IPVS virtual server per (VIP,
// port, protocol) with its real servers, the addresses to bind on the dummy interface
// kube-ipvs0, the contents of kube-proxy's ipsets, and the companion iptables-restore
// payload that masquerades, accepts node ports, filters load-balancer source ranges and
// rejects traffic to a VIP on ports that are not service ports (kubernetes#72236).
//
// The kernel is reached through narrow interfaces, one per subsystem (Interface for
// IPVS, Links for the dummy interface, IPSets, Sysctl; iptables goes through
// pkg/xtables.Interface), with Linux implementations over github.com/moby/ipvs,
// github.com/vishvananda/netlink, the ipset program and /proc/sys, and strict fakes in
// pkg/ipvs/testing.
//
// Proxier reconciles: a full sync reads the kernel and converges it (adopting what a
// previous run left, touching only what Switchyard owns), a partial sync applies the
// difference for the changed service ports only, and CheckTerminating finishes the
// graceful termination of removed TCP real servers.
package ipvs
