package testbed

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultTCPPorts and DefaultUDPPorts are the ports every pod's echo server
// listens on unless WithPorts says otherwise: the usual HTTP ports plus
// 9376 (the port of Kubernetes' own serve-hostname e2e image), and DNS plus
// 9376 for UDP.
var (
	DefaultTCPPorts = []int{80, 8080, 9376}
	DefaultUDPPorts = []int{53, 9376}
)

// Pod is a network namespace standing in for a pod on a node, running an
// echo server that answers "<pod name> <source ip:port>". No Pod object is
// created: tests publish its addresses with PublishEndpoints.
type Pod struct {
	// Name is the name the echo server answers with.
	Name string
	// IP and IPv6 are the pod's addresses, from its node's pod CIDRs.
	IP, IPv6 string
	// Node is the node it runs on.
	Node *Node
	// Netns is its network namespace.
	Netns string
	// TCPPorts and UDPPorts are the ports its echo server listens on.
	TCPPorts, UDPPorts []int
	// Server is the echo server process.
	Server *Process
}

// PodOption changes how AddPod sets a pod up.
type PodOption func(*Pod)

// WithPorts sets the TCP and UDP ports of the pod's echo server.
func WithPorts(tcp, udp []int) PodOption {
	return func(p *Pod) { p.TCPPorts, p.UDPPorts = tcp, udp }
}

// AddPod creates a pod namespace on node: a veth to the node's bridge,
// addresses from the node's pod CIDRs, default routes via the bridge, and an
// echo server on DefaultTCPPorts and DefaultUDPPorts (see WithPorts). It
// returns once the server is listening.
func (c *Cluster) AddPod(t testing.TB, node *Node, name string, options ...PodOption) *Pod {
	t.Helper()
	pod, err := c.addPod(node, name, options)
	if err != nil {
		t.Fatalf("testbed: adding pod %s on %s: %v", name, node.Name, err)
	}
	return pod
}

func (c *Cluster) addPod(node *Node, name string, options []PodOption) (*Pod, error) {
	if strings.ContainsAny(name, " \n") || name == "" {
		return nil, fmt.Errorf("pod name %q must be non-empty without spaces", name)
	}
	c.mu.Lock()
	node.pods++
	index := node.pods
	c.mu.Unlock()
	// Pod j gets host .(j+1): .1 is the node's bridge.
	if index > 250 {
		return nil, fmt.Errorf("at most 250 pods per node")
	}
	pod := &Pod{
		Name:     name,
		IP:       fmt.Sprintf("10.244.%d.%d", node.Index, index+1),
		IPv6:     fmt.Sprintf("fd00:244:%d::%d", node.Index, index+1),
		Node:     node,
		Netns:    fmt.Sprintf("%s%s-n%dp%d", Prefix, c.ID, node.Index, index),
		TCPPorts: DefaultTCPPorts,
		UDPPorts: DefaultUDPPorts,
	}
	for _, option := range options {
		option(pod)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.addNetns(ctx, pod.Netns); err != nil {
		return nil, err
	}
	hostSide := fmt.Sprintf("%sp%d", Prefix, index)
	if err := ipBatch(ctx, node.Netns,
		"link add "+hostSide+" type veth peer name sy-eth0 netns "+pod.Netns,
		"link set "+hostSide+" master "+bridgeName,
		// Hairpin, as kubelet's hairpin-veth mode sets: with br_netfilter
		// a pod reaching itself through a service IP is DNATed while
		// being bridged and must leave by the port it came in on.
		"link set "+hostSide+" type bridge_slave hairpin on",
		"link set "+hostSide+" up",
	); err != nil {
		return nil, err
	}
	if err := ipBatch(ctx, pod.Netns,
		"addr add "+pod.IP+"/24 dev sy-eth0",
		"addr add "+pod.IPv6+"/64 dev sy-eth0 nodad",
		"link set sy-eth0 up",
		fmt.Sprintf("route add default via 10.244.%d.1", node.Index),
		fmt.Sprintf("route add default via fd00:244:%d::1", node.Index),
	); err != nil {
		return nil, err
	}
	if err := waitPortsForwarding(ctx, node.Netns, hostSide); err != nil {
		return nil, err
	}
	server, err := c.startProcess("pod-"+name, pod.Netns, nil, c.echo, "serve",
		"--name", name, "--tcp", joinPorts(pod.TCPPorts), "--udp", joinPorts(pod.UDPPorts))
	if err != nil {
		return nil, err
	}
	pod.Server = server
	if err := server.waitForLog(ctx, "ready", 30*time.Second); err != nil {
		return nil, err
	}
	return pod, nil
}

func joinPorts(ports []int) string {
	fields := make([]string, len(ports))
	for i, port := range ports {
		fields[i] = strconv.Itoa(port)
	}
	return strings.Join(fields, ",")
}

// Exec runs argv inside the pod's namespace and returns its combined output.
func (p *Pod) Exec(ctx context.Context, argv ...string) (string, error) {
	output, err := execInNetns(ctx, p.Netns, nil, argv...)
	return string(output), err
}

// Dial opens one connection from the pod to addr; see Dial.
func (p *Pod) Dial(ctx context.Context, proto, addr string) (Reply, error) {
	return Dial(ctx, p, proto, addr)
}

func (p *Pod) clientNetns() (string, string) { return p.Netns, p.Node.cluster.echo }

// String names the pod in errors and logs.
func (p *Pod) String() string { return "pod " + p.Name }
