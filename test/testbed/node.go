package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxNodes keeps node addresses (.10+i) below the outside client's .100.
const maxNodes = 80

// Node is a network namespace standing in for a Kubernetes node, with a Node
// object in the apiserver. It has a veth on the cluster segment, one on the
// outside segment, and a bridge its pods attach to.
type Node struct {
	// Name is the Node object's name (use it as --hostname-override).
	Name string
	// Index is the node's number, from 1; it picks its addresses.
	Index int
	// IP and IPv6 are the node's addresses on the cluster segment, the
	// InternalIPs of its Node object.
	IP, IPv6 string
	// OutsideIP and OutsideIPv6 are its addresses on the outside segment,
	// where the outside client reaches NodePorts.
	OutsideIP, OutsideIPv6 string
	// PodCIDR and PodCIDRv6 are the node's pod ranges.
	PodCIDR, PodCIDRv6 string
	// Netns is the node's network namespace.
	Netns string
	// Labels are the labels its Node object was created with.
	Labels map[string]string

	cluster *Cluster
	pods    int
}

// AddNode creates a node namespace wired to the cluster and outside
// segments, with forwarding on, a pod bridge and routes to every other
// node's pod CIDRs, then creates its Node object (labels, pod CIDRs) and
// patches status.addresses, since kube-proxy waits for those.
func (c *Cluster) AddNode(t testing.TB, name string, labels map[string]string) *Node {
	t.Helper()
	node, err := c.addNode(name, labels)
	if err != nil {
		t.Fatalf("testbed: adding node %s: %v", name, err)
	}
	return node
}

func (c *Cluster) addNode(name string, labels map[string]string) (*Node, error) {
	// Nodes are added one at a time: each new node routes to all earlier
	// ones and they to it, which concurrent additions could miss.
	c.addNodeMu.Lock()
	defer c.addNodeMu.Unlock()
	c.mu.Lock()
	index := len(c.nodes) + 1
	c.mu.Unlock()
	if index > maxNodes {
		return nil, fmt.Errorf("at most %d nodes", maxNodes)
	}
	node := &Node{
		Name:        name,
		Index:       index,
		IP:          fmt.Sprintf("10.250.0.%d", 10+index),
		IPv6:        fmt.Sprintf("fd00:250::%d", 10+index),
		OutsideIP:   fmt.Sprintf("10.251.0.%d", 10+index),
		OutsideIPv6: fmt.Sprintf("fd00:251::%d", 10+index),
		PodCIDR:     fmt.Sprintf("10.244.%d.0/24", index),
		PodCIDRv6:   fmt.Sprintf("fd00:244:%d::/64", index),
		Netns:       fmt.Sprintf("%s%s-n%d", Prefix, c.ID, index),
		Labels:      labels,
		cluster:     c,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.addNetns(ctx, node.Netns); err != nil {
		return nil, err
	}
	// Port names on the bridges say which node they lead to.
	port := fmt.Sprintf("%sn%d", Prefix, index)
	// Both veths are created from inside the node namespace with their
	// peers placed straight into the segment namespaces: no link ever
	// exists in the host namespace, not even for a moment.
	lines := []string{
		"link add sy-cluster type veth peer name " + port + " netns " + c.Netns,
		"link add sy-outside type veth peer name " + port + " netns " + c.Outside.Netns,
		"addr add " + node.IP + "/24 dev sy-cluster",
		"addr add " + node.IPv6 + "/64 dev sy-cluster nodad",
		"addr add " + node.OutsideIP + "/24 dev sy-outside",
		"addr add " + node.OutsideIPv6 + "/64 dev sy-outside nodad",
		"link set sy-cluster up",
		"link set sy-outside up",
		"link add " + bridgeName + " type bridge" + bridgeOptions,
		fmt.Sprintf("addr add 10.244.%d.1/24 dev %s", index, bridgeName),
		fmt.Sprintf("addr add fd00:244:%d::1/64 dev %s nodad", index, bridgeName),
		"link set " + bridgeName + " up",
		// A locally generated packet needs a route for its original
		// destination before the nat OUTPUT hook can DNAT it, so a
		// node needs a default route, as real nodes have, for traffic to
		// service IPs to work. It points at the control plane, which does
		// not forward: anything not DNATed dies there.
		"route add default via " + APIServerIP,
		"route add default via fd00:250::1",
	}
	for _, other := range c.Nodes() {
		lines = append(lines,
			"route add "+other.PodCIDR+" via "+other.IP,
			"route add "+other.PodCIDRv6+" via "+other.IPv6)
	}
	if err := ipBatch(ctx, node.Netns, lines...); err != nil {
		return nil, err
	}
	for _, segment := range []string{c.Netns, c.Outside.Netns} {
		if err := ipBatch(ctx, segment, "link set "+port+" master "+bridgeName, "link set "+port+" up"); err != nil {
			return nil, err
		}
	}
	for _, segment := range []string{c.Netns, c.Outside.Netns} {
		if err := waitPortsForwarding(ctx, segment, port); err != nil {
			return nil, err
		}
	}
	// The outside client reaches the node's primary (cluster-segment)
	// addresses through the node's outside link, as a client in front of
	// a real cluster reaches node IPs: kube-proxy's nftables mode, for one,
	// serves NodePorts on the primary node IPs only by default.
	if err := ipBatch(ctx, c.Outside.Netns,
		"route add "+node.IP+" via "+node.OutsideIP,
		"route add "+node.IPv6+" via "+node.OutsideIPv6); err != nil {
		return nil, err
	}
	for _, other := range c.Nodes() {
		if err := ipBatch(ctx, other.Netns,
			"route add "+node.PodCIDR+" via "+node.IP,
			"route add "+node.PodCIDRv6+" via "+node.IPv6); err != nil {
			return nil, err
		}
	}
	if err := setSysctls(ctx, node.Netns,
		"net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1",
	); err != nil {
		return nil, err
	}
	if err := c.createNodeObject(ctx, node); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, node)
	c.mu.Unlock()
	return node, nil
}

func (c *Cluster) createNodeObject(ctx context.Context, node *Node) error {
	labels := map[string]string{"kubernetes.io/hostname": node.Name, "kubernetes.io/os": "linux"}
	for key, value := range node.Labels {
		labels[key] = value
	}
	object := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, Labels: labels},
		Spec: v1.NodeSpec{
			PodCIDR:  node.PodCIDR,
			PodCIDRs: []string{node.PodCIDR, node.PodCIDRv6},
		},
	}
	if _, err := c.Clientset.CoreV1().Nodes().Create(ctx, object, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Node %s: %w", node.Name, err)
	}
	// Status is a subresource: the create above drops it, so patch it in.
	status := map[string]any{"status": map[string]any{
		"addresses": []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: node.IP},
			{Type: v1.NodeInternalIP, Address: node.IPv6},
			{Type: v1.NodeHostName, Address: node.Name},
		},
		"conditions": []v1.NodeCondition{{
			Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "TestbedNode",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
	}}
	patch, err := json.Marshal(status)
	if err != nil {
		return err
	}
	if _, err := c.Clientset.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("patching status of Node %s: %w", node.Name, err)
	}
	return nil
}

// Env returns the environment for programs run in the node: the test
// process's environment with PATH starting with the cluster's iptables
// backend shims and the pinned tools (kubectl, ...), and XTABLES_LOCKFILE set
// to the node's own lock file (XTablesLockFile).
func (n *Node) Env() []string {
	return append(n.cluster.env(), "XTABLES_LOCKFILE="+n.XTablesLockFile())
}

// XTablesLockFile is the xtables lock of the node's programs. iptables-legacy
// serialises writers with an flock on /run/xtables.lock, a file the node
// namespaces share with the host (`ip netns exec` keeps /run), although the
// tables it guards are per network namespace: with the host's file, every
// testbed node (and the host's own iptables) would wait for one another, and a
// test holding the lock to see what a proxy does would hold the host's. Each
// node therefore has its own file, which iptables reads from XTABLES_LOCKFILE.
// iptables-nft takes no such lock.
func (n *Node) XTablesLockFile() string {
	return filepath.Join(n.cluster.Dir, n.Name+".xtables.lock")
}

// Exec runs argv inside the node's namespace with Env, and returns its
// combined output; the error includes the output.
func (n *Node) Exec(ctx context.Context, argv ...string) (string, error) {
	output, err := execInNetns(ctx, n.Netns, n.Env(), argv...)
	return string(output), err
}

// Start runs a long-lived program inside the node's namespace (a proxy under
// test, say) with Env, logging to a file in the cluster directory. It
// returns once the process is started, not when the program is ready: wait
// for that with the program's own signal (a health endpoint through
// HTTPClient, a reply through Dial). The testbed stops it at teardown; the
// test may Stop it earlier.
func (n *Node) Start(t testing.TB, name string, argv ...string) *Process {
	t.Helper()
	process, err := n.cluster.startProcess(n.Name+"-"+name, n.Netns, n.Env(), argv...)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return process
}

// HTTPClient returns an HTTP client whose connections are made inside the
// node's namespace, for metrics and health endpoints bound to node addresses.
func (n *Node) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: netnsDialer(n.Netns), DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
}

// Dial opens one connection from the node to addr; see Dial.
func (n *Node) Dial(ctx context.Context, proto, addr string) (Reply, error) {
	return Dial(ctx, n, proto, addr)
}

func (n *Node) clientNetns() (string, string) { return n.Netns, n.cluster.echo }

// String names the node in errors and logs.
func (n *Node) String() string { return "node " + n.Name }

// env builds the environment for node programs.
func (c *Cluster) env() []string {
	path := strings.Join([]string{
		c.shimDir(), filepath.Dir(c.tools["kubectl"]),
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
	}, string(os.PathListSeparator))
	env := []string{"PATH=" + path}
	for _, variable := range os.Environ() {
		if !strings.HasPrefix(variable, "PATH=") {
			env = append(env, variable)
		}
	}
	return env
}

func (c *Cluster) shimDir() string { return filepath.Join(c.Dir, "iptables-"+c.IPTablesBackend) }

// writeIPTablesShims makes the directory of symlinks that selects the
// iptables backend: xtables-*-multi dispatch on the name they are run as.
func (c *Cluster) writeIPTablesShims() error {
	multi := "/usr/sbin/xtables-nft-multi"
	if c.IPTablesBackend == "legacy" {
		multi = "/usr/sbin/xtables-legacy-multi"
	}
	if _, err := os.Stat(multi); err != nil {
		// Not fatal here: only tests running iptables need it, and they
		// fail with a clear "not found" from the shim.
		c.t.Logf("testbed: %s missing (run hack/ci-deps.sh): %v", multi, err)
	}
	dir := c.shimDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, family := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			if err := os.Symlink(multi, filepath.Join(dir, family+suffix)); err != nil {
				return fmt.Errorf("iptables shim: %w", err)
			}
		}
	}
	return nil
}

// Outside is the client namespace outside the cluster: it reaches every
// node's outside address over its own segment, every node's IP and IPv6
// through that node's outside address, and nothing else unless the test
// adds a route (RouteFromOutside).
type Outside struct {
	// Netns is its network namespace.
	Netns string
	// IP and IPv6 are its addresses on the outside segment.
	IP, IPv6 string

	cluster *Cluster
}

// Dial opens one connection from the outside client to addr; see Dial.
func (o *Outside) Dial(ctx context.Context, proto, addr string) (Reply, error) {
	return Dial(ctx, o, proto, addr)
}

func (o *Outside) clientNetns() (string, string) { return o.Netns, o.cluster.echo }

// String names the outside client in errors and logs.
func (o *Outside) String() string { return "outside client" }

// OutsideDial opens one connection from the outside client to addr.
func (c *Cluster) OutsideDial(ctx context.Context, proto, addr string) (Reply, error) {
	return c.Outside.Dial(ctx, proto, addr)
}

// RouteFromOutside routes cidr (an external IP or load-balancer range) from
// the outside client to node's outside address, as an upstream router would.
func (c *Cluster) RouteFromOutside(t testing.TB, cidr string, node *Node) {
	t.Helper()
	prefix, err := netParseCIDR(cidr)
	if err != nil {
		t.Fatalf("testbed: RouteFromOutside: %v", err)
	}
	// ip infers the family from the addresses.
	via := node.OutsideIP
	if prefix.To4() == nil {
		via = node.OutsideIPv6
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ipBatch(ctx, c.Outside.Netns, "route replace "+cidr+" via "+via); err != nil {
		t.Fatalf("testbed: RouteFromOutside: %v", err)
	}
}

func netParseCIDR(cidr string) (net.IP, error) {
	ip, _, err := net.ParseCIDR(cidr)
	if err != nil {
		if ip = net.ParseIP(cidr); ip == nil {
			return nil, fmt.Errorf("bad CIDR or IP %q: %w", cidr, err)
		}
	}
	return ip, nil
}
