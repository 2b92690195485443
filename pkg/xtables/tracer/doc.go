// Package tracer follows a new connection's first packet through a
// ruleset.Ruleset the way the kernel's netfilter hooks would, and reports
// every way it can end: which endpoint it is DNATed to, whether it is
// masqueraded, and whether it is accepted, dropped or rejected.
//
// This is the kind of test kube-proxy's own proxier tests prefer to string
// comparison: assert where a packet can go, not what the rules look like.
//
// Random choices (-m statistic) are explored both ways, so a Result lists
// every reachable endpoint with its probability. Session affinity
// (-m recent --rcheck) misses unless Options.AffinityHit names the list.
//
// In IPVS mode, Options.IPSets give the contents of the ipsets the companion
// rules match, and Options.IPVS the virtual server that takes the packet and the
// real server its scheduler picked.
//
// Simplifications: only the first (NEW) packet is traced; routing is "local
// if the destination is a node address or loopback, else forwarded"; the
// outgoing interface is whatever Packet.OutIface says.
package tracer
