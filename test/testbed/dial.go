package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Errors a dial wraps, telling apart how a connection failed. A proxy with
// no endpoints for a service is expected to REJECT (ErrRefused); a
// NetworkPolicy-like DROP or a missing rule times out (ErrTimeout).
var (
	// ErrRefused: the connection was actively refused (TCP RST or ICMP
	// port unreachable), as an iptables REJECT does.
	ErrRefused = errors.New("connection refused")
	// ErrTimeout: no answer within the timeout, as an iptables DROP does.
	ErrTimeout = errors.New("timed out")
	// ErrFiltered: the client's own namespace dropped the packet on its
	// way out (the kernel fails the send with EPERM), as a DROP rule in
	// the OUTPUT path does for traffic from a node. (A REJECT there still
	// reads as ErrRefused.)
	ErrFiltered = errors.New("dropped by the local firewall")
	// ErrUnreachable: no route, or ICMP host/network unreachable.
	ErrUnreachable = errors.New("unreachable")
	// ErrOther: any other failure (a reset after connecting, a malformed
	// reply, ...).
	ErrOther = errors.New("failed")
)

// DialTimeout bounds each connection attempt of Dial; DistributionTimeout
// each attempt of Distribution. A DROP is detected only by waiting this
// long.
var (
	DialTimeout         = 2 * time.Second
	DistributionTimeout = 1 * time.Second
)

// Reply is what a pod's echo server answered.
type Reply struct {
	// Pod is the name of the pod that answered.
	Pod string
	// Source is the client address the pod saw, ip:port; it shows whether
	// the traffic was masqueraded.
	Source string
}

// SourceIP returns the IP part of Source.
func (r Reply) SourceIP() string {
	host, _, err := net.SplitHostPort(r.Source)
	if err != nil {
		return r.Source
	}
	return host
}

// Client is a namespace test traffic can start from: *Node, *Pod or
// *Outside.
type Client interface {
	// clientNetns returns the namespace and the syecho binary path.
	clientNetns() (netns, echo string)
	fmt.Stringer
}

// dialResult mirrors the JSON syecho dial prints.
type dialResult struct {
	Counts         map[string]int `json:"counts"`
	Last           *Reply         `json:"last"`
	Failures       map[string]int `json:"failures"`
	FirstError     string         `json:"firstError"`
	FirstErrorKind string         `json:"firstErrorKind"`
}

var errorKinds = map[string]error{
	"refused":     ErrRefused,
	"timeout":     ErrTimeout,
	"filtered":    ErrFiltered,
	"unreachable": ErrUnreachable,
	"other":       ErrOther,
}

// runDial runs `syecho dial` inside from's namespace.
func runDial(ctx context.Context, from Client, proto, addr string, count int, timeout time.Duration) (dialResult, error) {
	if proto != "tcp" && proto != "udp" {
		return dialResult{}, fmt.Errorf("protocol %q: want tcp or udp", proto)
	}
	netns, echo := from.clientNetns()
	output, err := execInNetns(ctx, netns, nil, echo, "dial", "--proto", proto, "--addr", addr,
		"--count", strconv.Itoa(count), "--timeout", timeout.String())
	if err != nil {
		return dialResult{}, fmt.Errorf("%s from %s: %w", proto, from, err)
	}
	var result dialResult
	if err := json.Unmarshal(output, &result); err != nil {
		return dialResult{}, fmt.Errorf("%s from %s: decoding %q: %w", proto, from, output, err)
	}
	return result, nil
}

// failure turns the failures of a dial run into an error wrapping the kind
// of the first one.
func (r dialResult) failure(from Client, proto, addr string, count int) error {
	failed := 0
	for _, n := range r.Failures {
		failed += n
	}
	if failed == 0 {
		return nil
	}
	kind, ok := errorKinds[r.FirstErrorKind]
	if !ok {
		kind = ErrOther
	}
	if count == 1 {
		return fmt.Errorf("%s %s from %s: %w (%s)", proto, addr, from, kind, r.FirstError)
	}
	return fmt.Errorf("%s %s from %s: %d of %d attempts failed %v, first: %w (%s)",
		proto, addr, from, failed, count, r.Failures, kind, r.FirstError)
}

// Dial opens one connection (TCP) or sends one datagram (UDP) from inside
// from's namespace to addr ("10.96.0.10:80", "[fd00:96::a]:53") and returns
// the echo server's reply. proto is "tcp" or "udp". Failures wrap
// ErrRefused, ErrTimeout, ErrFiltered, ErrUnreachable or ErrOther; each
// attempt waits at most DialTimeout.
func Dial(ctx context.Context, from Client, proto, addr string) (Reply, error) {
	result, err := runDial(ctx, from, proto, addr, 1, DialTimeout)
	if err != nil {
		return Reply{}, err
	}
	if err := result.failure(from, proto, addr, 1); err != nil {
		return Reply{}, err
	}
	if result.Last == nil {
		return Reply{}, fmt.Errorf("%s %s from %s: %w: no reply recorded", proto, addr, from, ErrOther)
	}
	return *result.Last, nil
}

// Distribution makes n connections (a fresh source port each) from inside
// from's namespace to addr, in one client process, and counts which pod
// answered each. If any attempt fails it returns the counts so far together
// with an error wrapping the first failure's kind.
func Distribution(ctx context.Context, from Client, proto, addr string, n int) (map[string]int, error) {
	result, err := runDial(ctx, from, proto, addr, n, DistributionTimeout)
	if err != nil {
		return nil, err
	}
	return result.Counts, result.failure(from, proto, addr, n)
}

// WaitForReply dials addr from from until a connection succeeds and accept
// (if not nil) approves the reply, or timeout passes; the error then says
// what the last attempt saw. It is how tests wait for a proxy to program a
// service.
func WaitForReply(ctx context.Context, from Client, proto, addr string, timeout time.Duration, accept func(Reply) error) (Reply, error) {
	var reply Reply
	err := poll(ctx, timeout, fmt.Sprintf("a reply on %s %s from %s", proto, addr, from), func(ctx context.Context) error {
		var err error
		if reply, err = Dial(ctx, from, proto, addr); err != nil {
			return err
		}
		if accept != nil {
			return accept(reply)
		}
		return nil
	})
	return reply, err
}
