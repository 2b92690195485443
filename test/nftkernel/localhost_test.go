package nftkernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/test/testbed"
)

// TestLocalhostNodePortsInTheKernel loads nftables mode's table into a real kernel in
// a namespace, per family, with kube-proxy's KubeProxyNFTablesLocalhostNodePorts gate
// off and on, and connects from inside the namespace to a listener on the loopback
// address at a node port (30006) and at a port that is no node port (30099). Gate off
// (kube-proxy's default): both connections reach the listener, nothing is proxied or
// rejected. Gate on: the node port is refused and localhost-nodeport-rejected-tcp
// counts it, the other port still connects. Then Proxiers with loopback named in
// --nodeport-addresses (udp and sctp rejected only) and with the other gate setting
// take the table over, each in one full sync.
//
// mutation-checked (kernel 6.18): leaving the nodeport-endpoints-check localhost rule
// out fails "gate on" (the connection reaches the listener); keeping the reject map's
// elements in the element sync with the gate off fails the takeover from gate on
// ("No such file or directory": elements deleted from the deleted map); not deleting
// the tcp elements before the tcp chain when loopback is named (staleLocalhostRejects
// returning none) fails "gate=true" with "Device or resource busy", which is what
// kube-proxy v1.37.2 runs into (test/nftables' TestNFTablesLocalhostNodePortsTwin).
func TestLocalhostNodePortsInTheKernel(t *testing.T) {
	requireRoot(t)
	for _, f := range families {
		for _, gate := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-gate=%v", f.family, gate), func(t *testing.T) {
				ns := netnsNFT(t, fmt.Sprintf("lh%s%v", strings.ToLower(string(f.family[:4])), gate))
				if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
					t.Fatalf("lo up: %v: %s", err, out)
				}
				loopback := "127.0.0.1"
				if f.family == "IPv6" {
					loopback = "::1"
				}
				w := &world{t: t, f: f, tracker: endpoints.NewTracker("node1")}
				w.populate()
				syncRejects := func(rejects []string) {
					t.Helper()
					cfg := f.config(true)
					cfg.LocalhostNodePortRejects = rejects
					p := newKernelProxier(t, ns, f, cfg)
					if res, err := p.SyncDetailed(context.Background(), w.tracker.Snapshot()); err != nil || !res.Full {
						t.Fatalf("full sync rejecting %v: full %v, %v\n%s", rejects, res.Full, err, res.Transaction)
					}
				}
				sync := func(gate bool) { t.Helper(); syncRejects(nftables.LocalhostNodePortRejects(gate, false)) }
				sync(gate)
				for _, port := range []string{"30006", "30099"} {
					ln, err := testbed.SocketIn(ns, func() (net.Listener, error) { return net.Listen("tcp", net.JoinHostPort(loopback, port)) })
					if err != nil {
						t.Fatal(err)
					}
					defer ln.Close()
					go func() {
						for {
							c, err := ln.Accept()
							if err != nil {
								return
							}
							c.Close()
						}
					}()
				}
				dial := func(port string) error {
					c, err := testbed.SocketIn(ns, func() (net.Conn, error) {
						return net.DialTimeout("tcp", net.JoinHostPort(loopback, port), 5*time.Second)
					})
					if err == nil {
						c.Close()
					}
					return err
				}
				if err := dial("30099"); err != nil {
					t.Errorf("port 30099 (no node port): %v", err)
				}
				err := dial("30006")
				switch {
				case gate && !errors.Is(err, syscall.ECONNREFUSED):
					t.Errorf("node port 30006 on %s with the gate on: %v, want connection refused", loopback, err)
				case !gate && err != nil:
					t.Errorf("node port 30006 on %s with the gate off: %v, want the listener", loopback, err)
				}
				table := nftIn(t, ns, "list", "table", string(nftables.FamilyOf(f.family)), nftables.TableName)
				if gate {
					// The daemon's Kernel reads the reject map over netlink as nft
					// lists it (a full sync diffs its elements against that).
					sameElements(t, ns, f, "map", "localhost-nodeport-reject-ports")
					counter := nftIn(t, ns, "list", "counter", string(nftables.FamilyOf(f.family)), nftables.TableName, "localhost-nodeport-rejected-tcp")
					// At least the SYN (IPv6 may see a retransmission before the
					// ICMPv6 error is taken as a refusal).
					if !regexp.MustCompile(`packets [1-9]`).MatchString(counter) {
						t.Errorf("the reject counter did not count the connection:\n%s", counter)
					}
				} else if strings.Contains(table, "localhost-nodeport") {
					t.Errorf("localhost objects with the gate off:\n%s", table)
				}

				// A Proxier with the other setting takes the table over, then one
				// with loopback named in --nodeport-addresses (tcp no longer
				// rejected: its chain goes while map elements point to it).
				syncRejects(nftables.LocalhostNodePortRejects(true, true))
				sync(!gate)
				table = nftIn(t, ns, "list", "table", string(nftables.FamilyOf(f.family)), nftables.TableName)
				if got := strings.Contains(table, "localhost-nodeport-reject-ports"); got != !gate {
					t.Errorf("after switching the gate to %v, the reject map is there: %v\n%s", !gate, got, table)
				}
			})
		}
	}
}

// newKernelProxier opens ns's table as the daemon does (writes through nft, reads over
// netlink) and returns a Proxier on it.
func newKernelProxier(t *testing.T, ns string, f familyCase, cfg *nftables.Config) *nftables.Proxier {
	t.Helper()
	nsFile, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	// The netlink reads enter the namespace through this file at each call: it stays
	// open as long as the Proxier may read.
	t.Cleanup(func() { nsFile.Close() })
	nft, err := nftables.OpenIn(f.family, nsFile)
	if err != nil {
		t.Fatalf("nftables in %s: %v", ns, err)
	}
	p, err := nftables.NewProxier(cfg, nft, 0, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
