// Package testbed runs a real Kubernetes control plane and a set of fake
// nodes and pods in network namespaces on one machine, for Switchyard's
// privileged tests and benchmarks.
//
// Nothing touches the host's own network namespace: every link, address,
// route, sysctl and firewall rule lives in a namespace the testbed created,
// and every name carries the prefix "sy-". Tests call Require first, which
// skips them when not run as root.
//
// IP plan (see docs/testbed.md):
//
//	cluster segment    10.250.0.0/24, fd00:250::/64  control plane .1/::1, node i .(10+i)
//	outside segment    10.251.0.0/24, fd00:251::/64  outside client .100/::100, node i .(10+i)
//	pod CIDR of node i 10.244.i.0/24, fd00:244:i::/64 node bridge .1/::1, pod j .(j+1)
//	cluster CIDR       10.244.0.0/16, fd00:244::/32
//	service CIDRs      10.96.0.0/16, fd00:96::/112
//	external IPs       10.252.0.0/24, fd00:252::/64 (routable from outside via RouteFromOutside)
//
// Nodes route to each other's pod CIDRs and default to the control plane
// (which does not forward). The outside client reaches each node's outside
// address and, through it, the node's cluster-segment addresses.
//
// Namespaces are named sy-<id>-cp (etcd and kube-apiserver), sy-<id>-out
// (the outside client), sy-<id>-n<i> (node i) and sy-<id>-n<i>p<j> (pod j
// of node i), where <id> is six hex digits chosen per Cluster.
package testbed
