// Package nftables holds the privileged tests of nftables mode: the strict
// model in pkg/nftables/nftmodel checked against real connections through
// the pinned kube-proxy v1.37.2 in --proxy-mode nftables (and the fixtures
// the model's unit tests read, captured from it), and Switchyard's nftables
// mode compared with that kube-proxy on a twin node.
//
// The tests need root and the pinned tools (`make tools`); otherwise they
// skip. Run them with `sudo hack/e2e.sh -run TestNFTables -v`, or just this
// package with
// `SWITCHYARD_TOOLS_BIN=$(hack/build-tools.sh | tail -1) go test -race -count=1 ./test/nftables/ -v`.
package nftables
