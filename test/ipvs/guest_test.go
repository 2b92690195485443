//go:build ipvsguest && linux

package ipvs

// IP plan inside the guest (the guest's root namespace is the node):
//   br0 10.244.1.1/24          the node's pod bridge; pods pod-a/b/c = 10.244.1.11/12/13
//   veth-client 192.168.100.1  the node's address towards the client (node IP)
//   client ns 192.168.100.2-9  an outside client with several source addresses
//   10.96.0.x                  cluster IPs; 203.0.113.10 an external IP; 198.51.100.20 an LB VIP
//   10.0.0.99:80               a foreign IPVS service (not Switchyard's)
// Every pod runs an echo server on :8080 (TCP and UDP) answering with its name; on TCP
// the line "source" is answered with the client address the pod sees instead.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	libipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netns"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

const (
	nodeIPText = "192.168.100.1"
	client     = "client"
)

var pods = map[string]string{"pod-a": "10.244.1.11", "pod-b": "10.244.1.12", "pod-c": "10.244.1.13"}

func sh(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNS runs fn on a thread switched into the named network namespace. Sockets created
// there stay in that namespace after the thread switches back.
func inNS(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer netns.Set(orig) //nolint:errcheck // restoring the thread's namespace
	return fn()
}

// topology builds the pods, the bridge and the client namespace, and starts the echo
// servers.
func topology(t *testing.T) {
	t.Helper()
	if os.Getenv("SWITCHYARD_VM_GUEST") != "1" {
		t.Skip("SWITCHYARD_VM_GUEST is not set: these tests program the kernel and run only inside the VM (see TestIPVSInVM)")
	}
	sh(t, "ip", "link", "set", "lo", "up")
	sh(t, "ip", "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "addr", "add", "10.244.1.1/24", "dev", "br0")
	sh(t, "ip", "link", "set", "br0", "up")
	for _, name := range slices.Sorted(maps.Keys(pods)) {
		ip := pods[name]
		sh(t, "ip", "netns", "add", name)
		sh(t, "ip", "link", "add", "v-"+name, "type", "veth", "peer", "name", "eth0", "netns", name)
		sh(t, "ip", "link", "set", "v-"+name, "master", "br0", "up")
		sh(t, "ip", "-n", name, "addr", "add", ip+"/24", "dev", "eth0")
		sh(t, "ip", "-n", name, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", name, "link", "set", "lo", "up")
		sh(t, "ip", "-n", name, "route", "add", "default", "via", "10.244.1.1")
		startEcho(t, name)
	}
	sh(t, "ip", "netns", "add", client)
	sh(t, "ip", "link", "add", "veth-client", "type", "veth", "peer", "name", "eth0", "netns", client)
	sh(t, "ip", "addr", "add", nodeIPText+"/24", "dev", "veth-client")
	sh(t, "ip", "link", "set", "veth-client", "up")
	for i := 2; i <= 9; i++ {
		sh(t, "ip", "-n", client, "addr", "add", fmt.Sprintf("192.168.100.%d/24", i), "dev", "eth0")
	}
	sh(t, "ip", "-n", client, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", client, "link", "set", "lo", "up")
	sh(t, "ip", "-n", client, "route", "add", "default", "via", nodeIPText)
}

// hostService runs a TCP server on the node (not in a pod) that answers "host", until
// the test ends: a service a virtual IP must not expose (kubernetes#72236).
func hostService(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "host")
			c.Close()
		}
	}()
}

// startEcho runs the pod's echo server: on connect it sends its name, then answers
// every line with its name again, except the line "source", which gets the peer's
// address as the pod sees it (to tell masqueraded connections apart); UDP datagrams
// get the name back.
func startEcho(t *testing.T, pod string) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := inNS(pod, func() error {
		var err error
		if ln, err = net.Listen("tcp", ":8080"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ":8080")
		return err
	})
	if err != nil {
		t.Fatalf("echo server in %s: %v", pod, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				fmt.Fprintf(conn, "%s\n", pod)
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					if sc.Text() == "source" {
						fmt.Fprintf(conn, "%s\n", conn.RemoteAddr().(*net.TCPAddr).IP)
						continue
					}
					fmt.Fprintf(conn, "%s\n", pod)
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(pod+"\n"), addr)
		}
	}()
}

// conn is a client connection that knows which pod answered.
type conn struct {
	net.Conn
	r   *bufio.Reader
	pod string
}

// dial connects from the client namespace, from source address src (empty: any).
func dial(src, dst string, timeout time.Duration) (*conn, error) {
	return dialFrom(client, src, dst, timeout)
}

// dialFrom connects from network namespace ns (the client or a pod).
func dialFrom(ns, src, dst string, timeout time.Duration) (*conn, error) {
	var c net.Conn
	err := inNS(ns, func() error {
		d := net.Dialer{Timeout: timeout}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var err error
		c, err = d.Dial("tcp", dst)
		return err
	})
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the greeting from %s: %w", dst, err)
	}
	_ = c.SetDeadline(time.Time{})
	return &conn{Conn: c, r: r, pod: strings.TrimSpace(line)}, nil
}

// ask sends a line on an established connection and returns who answered.
func (c *conn) ask() (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{}) //nolint:errcheck
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	return strings.TrimSpace(line), err
}

// source asks the pod at the other end which client address it sees.
func (c *conn) source() (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{}) //nolint:errcheck
	if _, err := fmt.Fprintln(c, "source"); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	return strings.TrimSpace(line), err
}

// who opens a short connection and returns the pod that answered.
func who(t *testing.T, src, dst string) string {
	t.Helper()
	c, err := dial(src, dst, 3*time.Second)
	if err != nil {
		t.Fatalf("connecting %s -> %s: %v", src, dst, err)
	}
	c.Close()
	return c.pod
}

func whoUDP(t *testing.T, dst string) string {
	t.Helper()
	var c net.Conn
	if err := inNS(client, func() error {
		var err error
		c, err = net.Dial("udp", dst)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	for range 5 {
		_, _ = c.Write([]byte("hi"))
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil {
			return strings.TrimSpace(string(buf[:n]))
		}
	}
	t.Fatalf("no UDP answer from %s", dst)
	return ""
}

// world is the cluster state the test controls; snapshot() yields consecutive
// snapshots with the changed service ports.
type world struct {
	gen   uint64
	ports map[endpoints.ServicePortName]*endpoints.ServicePort
	eps   map[endpoints.ServicePortName][]*endpoints.Endpoint
	dirty map[endpoints.ServicePortName]struct{}
}

func newWorld() *world {
	return &world{ports: map[endpoints.ServicePortName]*endpoints.ServicePort{},
		eps: map[endpoints.ServicePortName][]*endpoints.Endpoint{}, dirty: map[endpoints.ServicePortName]struct{}{}}
}

func svcPort(name, clusterIP string, mod ...func(*endpoints.ServicePort)) *endpoints.ServicePort {
	p := &endpoints.ServicePort{
		Name:       endpoints.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}, Port: "p", Protocol: v1.ProtocolTCP},
		Port:       80,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(clusterIP)},
	}
	for _, m := range mod {
		m(p)
	}
	return p
}

func (w *world) set(p *endpoints.ServicePort, podNames ...string) {
	var eps []*endpoints.Endpoint
	for _, n := range podNames {
		eps = append(eps, &endpoints.Endpoint{IP: netip.MustParseAddr(pods[n]), Port: 8080, NodeName: "node", Ready: true, Serving: true})
	}
	slices.SortFunc(eps, func(a, b *endpoints.Endpoint) int { return a.AddrPort().Compare(b.AddrPort()) })
	w.ports[p.Name], w.eps[p.Name] = p, eps
	w.dirty[p.Name] = struct{}{}
}

func (w *world) snapshot() *endpoints.Snapshot {
	w.gen++
	s := &endpoints.Snapshot{Services: map[endpoints.ServicePortName]*endpoints.ServicePort{},
		Endpoints: map[endpoints.ServicePortName][]*endpoints.Endpoint{}, Changed: w.dirty, Generation: w.gen}
	for k, v := range w.ports {
		s.Services[k] = v
		if len(w.eps[k]) > 0 {
			s.Endpoints[k] = w.eps[k]
		}
	}
	w.dirty = map[endpoints.ServicePortName]struct{}{}
	return s
}

// newProxier returns a Proxier over the real kernel.
func newProxier(t *testing.T, mod ...func(*ipvs.Config)) *ipvs.Proxier {
	t.Helper()
	handle, err := ipvs.NewIPVS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(handle.Close)
	ipt, err := xtables.NewExec(v1.IPv4Protocol, xtables.BackendNFT, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ipvs.Config{FamilyConfig: node.FamilyConfig{
		Family:  v1.IPv4Protocol,
		Node:    endpoints.NodeTopology{Name: "node"},
		NodeIPs: []netip.Addr{netip.MustParseAddr(nodeIPText)},
		Local:   node.DetectByCIDR(node.LocalModeClusterCIDR, netip.MustParsePrefix("10.244.0.0/16")),
	}}
	for _, m := range mod {
		m(cfg)
	}
	p, err := ipvs.NewProxier(cfg, ipvs.Kernel{IPVS: handle, Links: ipvs.NewLinks(), IPSets: ipvs.NewNetlinkIPSets(),
		IPTables: ipt, Sysctl: ipvs.ProcSysctl{}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sync(t *testing.T, p *ipvs.Proxier, w *world) ipvs.SyncResult {
	t.Helper()
	start := time.Now()
	res, err := p.SyncDetailed(context.Background(), w.snapshot())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	t.Logf("sync %d: full=%v ops=%d in %v", w.gen, res.Full, res.Stats.Ops(), time.Since(start))
	return res
}

func countPods(t *testing.T, n int, src, dst string) map[string]int {
	t.Helper()
	got := map[string]int{}
	start := time.Now()
	for range n {
		got[who(t, src, dst)]++
	}
	t.Logf("%d connections to %s in %v: %v", n, dst, time.Since(start), got)
	return got
}

func TestGuestRoundRobin(t *testing.T) {
	topology(t)
	p := newProxier(t)
	w := newWorld()
	w.set(svcPort("web", "10.96.0.10"), "pod-a", "pod-b", "pod-c")
	w.set(svcPort("dns", "10.96.0.11", func(sp *endpoints.ServicePort) { sp.Name.Protocol = v1.ProtocolUDP; sp.Port = 53 }), "pod-a", "pod-b")
	sync(t, p, w)
	got := countPods(t, 30, "", "10.96.0.10:80")
	for _, pod := range []string{"pod-a", "pod-b", "pod-c"} {
		if got[pod] != 10 {
			t.Errorf("rr: %s answered %d of 30 connections, want exactly 10: %v", pod, got[pod], got)
		}
	}
	udp := map[string]bool{}
	for range 4 {
		udp[whoUDP(t, "10.96.0.11:53")] = true
	}
	t.Logf("UDP answers from %v", udp)
	if len(udp) == 0 {
		t.Errorf("no UDP answers")
	}
}

func TestGuestLeastConnection(t *testing.T) {
	topology(t)
	p := newProxier(t, func(c *ipvs.Config) { c.Scheduler = "lc" })
	w := newWorld()
	w.set(svcPort("web", "10.96.0.10"), "pod-a", "pod-b", "pod-c")
	sync(t, p, w)
	var long []*conn
	busy := map[string]bool{}
	for range 2 {
		c, err := dial("", "10.96.0.10:80", 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		long = append(long, c)
		busy[c.pod] = true
	}
	if len(busy) != 2 {
		t.Fatalf("lc put both long connections on %v; want two different pods", busy)
	}
	got := countPods(t, 6, "", "10.96.0.10:80")
	for pod, n := range got {
		if busy[pod] {
			t.Errorf("lc sent %d new connections to %s, which holds a long one: %v", n, pod, got)
		}
	}
	for _, c := range long {
		if who, err := c.ask(); err != nil || who != c.pod {
			t.Errorf("long connection to %s: answer %q, %v", c.pod, who, err)
		}
	}
}

func TestGuestSourceHash(t *testing.T) {
	topology(t)
	p := newProxier(t, func(c *ipvs.Config) { c.Scheduler = "sh" })
	w := newWorld()
	web := svcPort("web", "10.96.0.10")
	w.set(web, "pod-a", "pod-b", "pod-c")
	sync(t, p, w)
	sources := []string{"192.168.100.2", "192.168.100.3", "192.168.100.4", "192.168.100.5", "192.168.100.6", "192.168.100.7", "192.168.100.8", "192.168.100.9"}
	home := map[string]string{}
	for _, src := range sources {
		got := countPods(t, 3, src, "10.96.0.10:80")
		if len(got) != 1 {
			t.Errorf("sh: client %s reached %v; want one pod", src, got)
		}
		for pod := range got {
			home[src] = pod
		}
	}
	// Take away the pod of the first client.
	gone := home[sources[0]]
	var rest []string
	for _, n := range []string{"pod-a", "pod-b", "pod-c"} {
		if n != gone {
			rest = append(rest, n)
		}
	}
	w.set(web, rest...)
	sync(t, p, w)
	real, err := libipvsReal("10.96.0.10", 80)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(real, pods[gone]+":8080") {
		t.Errorf("sh: removed endpoint %s still in the kernel (%v): it must be deleted, not weighted 0 (kubernetes#121590)", gone, real)
	}
	for _, src := range sources {
		got := countPods(t, 3, src, "10.96.0.10:80")
		if len(got) != 1 || got[gone] > 0 {
			t.Errorf("sh after removing %s: client %s (was on %s) reached %v", gone, src, home[src], got)
		}
		if home[src] != gone && got[home[src]] != 3 {
			t.Errorf("sh: client %s moved from %s to %v although its pod stayed", src, home[src], got)
		}
	}
}

// libipvsReal lists the real servers of a TCP virtual server straight from the kernel.
func libipvsReal(vip string, port uint16) ([]string, error) {
	h, err := libipvs.New("")
	if err != nil {
		return nil, err
	}
	defer h.Close()
	dests, err := h.GetDestinations(&libipvs.Service{AddressFamily: syscall.AF_INET, Protocol: syscall.IPPROTO_TCP, Address: net.ParseIP(vip), Port: port})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range dests {
		out = append(out, fmt.Sprintf("%s:%d", d.Address, d.Port))
	}
	slices.Sort(out)
	return out, nil
}

func TestGuestAffinity(t *testing.T) {
	topology(t)
	p := newProxier(t)
	w := newWorld()
	w.set(svcPort("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.AffinityTimeoutSeconds = 60 }), "pod-a", "pod-b", "pod-c")
	sync(t, p, w)
	for _, src := range []string{"192.168.100.2", "192.168.100.3", "192.168.100.4"} {
		if got := countPods(t, 6, src, "10.96.0.10:80"); len(got) != 1 {
			t.Errorf("affinity: client %s reached %v; want one pod", src, got)
		}
	}
}

func TestGuestNodePortExternalIPSourceRanges(t *testing.T) {
	topology(t)
	p := newProxier(t)
	w := newWorld()
	w.set(svcPort("np", "10.96.0.20", func(sp *endpoints.ServicePort) { sp.NodePort = 30080 }), "pod-a")
	w.set(svcPort("ext", "10.96.0.21", func(sp *endpoints.ServicePort) {
		sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.10")}
	}), "pod-b")
	w.set(svcPort("lb", "10.96.0.22", func(sp *endpoints.ServicePort) {
		sp.LoadBalancerVIPs = []netip.Addr{netip.MustParseAddr("198.51.100.20")}
		sp.LoadBalancerSourceRanges = []netip.Prefix{netip.MustParsePrefix("192.168.100.2/32")}
	}), "pod-c")
	sync(t, p, w)
	if got := who(t, "", nodeIPText+":30080"); got != "pod-a" {
		t.Errorf("node port answered by %q, want pod-a", got)
	}
	if got := who(t, "", "203.0.113.10:80"); got != "pod-b" {
		t.Errorf("external IP answered by %q, want pod-b", got)
	}
	if got := who(t, "192.168.100.2", "198.51.100.20:80"); got != "pod-c" {
		t.Errorf("LB VIP from an allowed source answered by %q, want pod-c", got)
	}
	start := time.Now()
	if c, err := dial("192.168.100.3", "198.51.100.20:80", 2*time.Second); err == nil {
		c.Close()
		t.Errorf("LB VIP from 192.168.100.3, outside the source ranges, was answered by %s", c.pod)
	} else {
		t.Logf("outside the source ranges: %v after %v (dropped)", err, time.Since(start))
	}
	// kubernetes#72236: a host service on 0.0.0.0 must not answer on a VIP.
	hostService(t, ":2222")
	if got := who(t, "", nodeIPText+":2222"); got != "host" {
		t.Fatalf("the host service is not reachable on the node IP: %q", got)
	}
	c, err := dial("", "10.96.0.20:2222", 2*time.Second)
	if err == nil {
		c.Close()
		t.Errorf("a host service answered on cluster IP 10.96.0.20:2222 (kubernetes#72236)")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("VIP on a non-service port: %v, want connection refused (REJECT)", err)
	}
}

func TestGuestNoEndpointsRefused(t *testing.T) {
	topology(t)
	p := newProxier(t)
	w := newWorld()
	w.set(svcPort("empty", "10.96.0.30"))
	sync(t, p, w)
	start := time.Now()
	c, err := dial("", "10.96.0.30:80", 3*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("a service without endpoints was answered by %s", c.pod)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("err = %v, want connection refused", err)
	}
	t.Logf("refused in %v", time.Since(start))
}

func TestGuestGracefulTermination(t *testing.T) {
	topology(t)
	p := newProxier(t, func(c *ipvs.Config) { c.GracePeriod = 4 * time.Second })
	w := newWorld()
	web := svcPort("web", "10.96.0.10")
	w.set(web, "pod-a", "pod-b")
	sync(t, p, w)
	long, err := dial("", "10.96.0.10:80", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	leaving := long.pod
	staying := "pod-a"
	if leaving == "pod-a" {
		staying = "pod-b"
	}
	w.set(web, staying)
	removed := time.Now()
	sync(t, p, w)
	if who, err := long.ask(); err != nil || who != leaving {
		t.Fatalf("the established connection to %s broke after the endpoint was removed: %q, %v", leaving, who, err)
	}
	got := countPods(t, 10, "", "10.96.0.10:80")
	if got[staying] != 10 {
		t.Errorf("new connections must avoid the draining %s: %v", leaving, got)
	}
	if res, err := p.CheckTerminating(context.Background()); err != nil || len(res.Deleted) != 0 {
		t.Errorf("check with a live connection: deleted %v, %v; want nothing deleted", res.Deleted, err)
	}
	real, _ := libipvsReal("10.96.0.10", 80)
	if !slices.Contains(real, pods[leaving]+":8080") {
		t.Errorf("the draining real server is gone too early: %v", real)
	}
	if who, err := long.ask(); err != nil || who != leaving {
		t.Errorf("the established connection failed after the check: %q, %v", who, err)
	}
	long.Close()
	// The closed connection lingers in TIME_WAIT (an inactive connection) for about 2
	// minutes, so the grace period is what ends the drain here.
	deadline := removed.Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := p.CheckTerminating(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Deleted) == 1 {
			t.Logf("deleted %v %v after removal", res.Deleted, time.Since(removed).Round(100*time.Millisecond))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	real, _ = libipvsReal("10.96.0.10", 80)
	if diff := slices.Compare(real, []string{pods[staying] + ":8080"}); diff != 0 {
		t.Errorf("after the drain the kernel holds %v, want only %s", real, staying)
	}
	// An endpoint that comes back while draining is restored at once.
	w.set(web, "pod-a", "pod-b")
	sync(t, p, w)
	if got := countPods(t, 10, "", "10.96.0.10:80"); got["pod-a"] != 5 || got["pod-b"] != 5 {
		t.Errorf("after the endpoint came back: %v, want 5 each", got)
	}
}

func TestGuestForeignServiceSurvives(t *testing.T) {
	topology(t)
	h, err := libipvs.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	foreign := &libipvs.Service{AddressFamily: syscall.AF_INET, Protocol: syscall.IPPROTO_TCP, Address: net.ParseIP("10.0.0.99"),
		Port: 80, SchedName: "wlc", Netmask: 0xffffffff}
	if err := h.NewService(foreign); err != nil {
		t.Fatal(err)
	}
	if err := h.NewDestination(foreign, &libipvs.Destination{AddressFamily: syscall.AF_INET, Address: net.ParseIP("10.244.1.11"), Port: 8080, Weight: 3}); err != nil {
		t.Fatal(err)
	}
	p := newProxier(t)
	w := newWorld()
	w.set(svcPort("web", "10.96.0.10", func(sp *endpoints.ServicePort) { sp.NodePort = 30080 }), "pod-a")
	sync(t, p, w)
	// A restarted proxier (full sync from scratch) and a cleanup.
	p2 := newProxier(t)
	res := sync(t, p2, w)
	if res.Stats.Ops() != 0 {
		t.Errorf("the restarted proxier changed %d things; adoption must be silent: %+v", res.Stats.Ops(), res.Stats)
	}
	if err := p2.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	svcs, err := h.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, s := range svcs {
		left = append(left, fmt.Sprintf("%s:%d/%s", s.Address, s.Port, s.SchedName))
	}
	if !slices.Equal(left, []string{"10.0.0.99:80/wlc"}) {
		t.Errorf("after cleanup the kernel holds %v, want only the foreign 10.0.0.99:80/wlc", left)
	}
	if real, _ := libipvsReal("10.0.0.99", 80); !slices.Equal(real, []string{"10.244.1.11:8080"}) {
		t.Errorf("the foreign service's real servers changed: %v", real)
	}
	if _, err := net.InterfaceByName("kube-ipvs0"); err == nil {
		t.Errorf("cleanup left kube-ipvs0")
	}
	out, _ := exec.Command("ipset", "list", "-n").CombinedOutput()
	if strings.Contains(string(out), "KUBE-") {
		t.Errorf("cleanup left ipsets:\n%s", out)
	}
}

// TestGuestCanaryAfterFlush checks IPVS mode's canary against the real kernel: a
// firewall reload replaces the nat and filter tables, which removes the masquerade
// rules and KUBE-IPVS-FILTER (a host service then answers on a VIP, kubernetes#72236).
// The canary check the controller runs every interval (Provider.CheckKernel, then
// RequestFullSync and a sync) must notice at its first tick after the flush and bring
// the rules back, so the VIP refuses the host port again and the service still works.
// Before the fix IPVS mode had no canary and this waited for the periodic full sync.
func TestGuestCanaryAfterFlush(t *testing.T) {
	topology(t)
	p := newProxier(t)
	w := newWorld()
	w.set(svcPort("web", "10.96.0.20"), "pod-a")
	sync(t, p, w)
	hostService(t, ":2222")
	vipRefusesHostPort := func() bool {
		c, err := dial("", "10.96.0.20:2222", 2*time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	saved := func() string {
		out, err := exec.Command("iptables-nft-save").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v\n%s", err, out)
		}
		return string(out)
	}
	programmed := func(rules string) bool {
		return strings.Contains(rules, "-j MASQUERADE") && strings.Contains(rules, "-A KUBE-IPVS-FILTER") &&
			strings.Contains(rules, "-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER")
	}
	if rules := saved(); !programmed(rules) || !vipRefusesHostPort() {
		t.Fatalf("before the flush the rules are not in place (or the VIP answers on the host port):\n%s", rules)
	}
	// A canary that always reported "missing" would also pass the checks below, by
	// forcing full syncs forever: on intact rules it must say they are there.
	canaryIntact := func(when string) {
		t.Helper()
		if ok, err := p.CheckKernel(context.Background()); err != nil || !ok {
			t.Fatalf("%s, the canary check on intact rules = %v, %v; want true", when, ok, err)
		}
	}
	canaryIntact("before the flush")

	// The firewall reload.
	reload := exec.Command("iptables-nft-restore")
	reload.Stdin = strings.NewReader("*nat\nCOMMIT\n*filter\nCOMMIT\n")
	if out, err := reload.CombinedOutput(); err != nil {
		t.Fatalf("flushing: %v\n%s", err, out)
	}
	if rules := saved(); programmed(rules) {
		t.Fatalf("the flush left the rules:\n%s", rules)
	}
	if got := who(t, "", "10.96.0.20:2222"); got != "host" {
		t.Fatalf("after the flush the host service should answer on the VIP, got %q", got)
	}

	// The controller's canary watcher, one tick at a time (pkg/controller watchers.go).
	const interval = time.Second
	flushed := time.Now()
	ticks := 0
	for ; ticks < 3; ticks++ {
		time.Sleep(interval)
		ok, err := p.CheckKernel(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			continue
		}
		p.RequestFullSync("canary chain missing")
		if res := sync(t, p, w); !res.Full || res.Reason != "canary chain missing" {
			t.Fatalf("the sync after the canary check: full=%v reason %q", res.Full, res.Reason)
		}
		break
	}
	if ticks != 0 {
		t.Errorf("the canary noticed the flush at tick %d, want the first", ticks+1)
	}
	if rules := saved(); !programmed(rules) {
		t.Fatalf("the rules are not back after the canary's full sync:\n%s", rules)
	}
	canaryIntact("after the canary's full sync")
	t.Logf("rules back %v after the flush (canary interval %v)", time.Since(flushed).Round(10*time.Millisecond), interval)
	if !vipRefusesHostPort() {
		t.Errorf("after the canary's full sync the VIP still does not refuse the host port (KUBE-IPVS-FILTER missing)")
	}
	if got := who(t, "", "10.96.0.20:80"); got != "pod-a" {
		t.Errorf("after the canary's full sync the service answered %q, want pod-a", got)
	}
}
