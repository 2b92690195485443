// Package bench measures rule-sync latency on the testbed: a real kube-apiserver and
// etcd, node network namespaces with the real kernel's iptables, and Switchyard and the
// reference kube-proxy v1.37.2 as contenders side by side against the same apiserver.
//
// The long benchmark is TestSyncBench in syncbench_test.go, behind the build tag
// "bench" so that `go test ./test/...` never runs it; hack/bench-sync.sh (make
// bench-sync) and hack/bench-full.sh (make bench-full) run it as root. It writes
// results.json under bench/results/<date>/, and benchreport (test/bench/report, a module
// of its own so that its plotting dependencies stay out of go.mod) turns that into a
// Markdown table and PNG charts.
//
// Everything is measured from outside the proxy: the clock starts when an API write
// returns (or when the proxy process starts) and stops when `iptables -t nat -S
// CHAIN`, run in the node's namespace, shows the expected jump. The proxies' own
// kubeproxy_network_programming_duration_seconds is recorded beside it.
//
// TestNFTablesBench (nftbench_test.go, hack/bench-nftables.sh, make bench-nftables)
// does the same for --proxy-mode nftables, kube-proxy's and Switchyard's, with `nft
// list` in the node's namespace as the probe, and adds a full sync (the proxy
// restarted on its populated table) and floors of bare `nft -f` on each contender's
// own ruleset.
package bench
