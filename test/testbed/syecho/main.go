// Command syecho is the testbed's traffic helper. The testbed builds it once
// per test binary run and runs it inside network namespaces:
//
//	syecho serve --name POD --tcp 80,8080 --udp 53
//	    answers every TCP connection and every UDP datagram with one line,
//	    "<POD> <source ip:port as seen by the server>", so a test learns
//	    both which backend answered and whether the proxy masqueraded.
//	syecho dial --proto tcp --addr 10.96.0.10:80 --count 100 --timeout 1s
//	    opens COUNT fresh connections (a new source port each, so a proxy
//	    picks an endpoint anew) and prints one JSON Result on stdout.
//
// It is a separate program rather than code in the test process because the
// client must run inside another network namespace, and `ip netns exec` of a
// small binary is simpler and safer than moving test goroutines between
// namespaces.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: syecho serve|dial [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:])
	case "dial":
		err = dial(args[1:])
	default:
		err = fmt.Errorf("unknown subcommand %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "syecho:", err)
		return 1
	}
	return 0
}

func parsePorts(list string) ([]int, error) {
	var ports []int
	for _, field := range strings.Split(list, ",") {
		if field == "" {
			continue
		}
		port, err := strconv.Atoi(field)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("bad port %q", field)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

func serve(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	name := flags.String("name", "", "name to answer with (the pod name)")
	tcpList := flags.String("tcp", "80", "comma-separated TCP ports")
	udpList := flags.String("udp", "53", "comma-separated UDP ports")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required")
	}
	tcpPorts, err := parsePorts(*tcpList)
	if err != nil {
		return fmt.Errorf("--tcp: %w", err)
	}
	udpPorts, err := parsePorts(*udpList)
	if err != nil {
		return fmt.Errorf("--udp: %w", err)
	}

	// Bind everything before announcing readiness, so the testbed never
	// sends traffic to a port that is not listening yet.
	for _, port := range tcpPorts {
		// ":port" gives one dual-stack socket: IPv4 and IPv6 clients alike.
		listener, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			return fmt.Errorf("listen tcp %d: %w", port, err)
		}
		go serveTCP(listener, *name)
	}
	for _, port := range udpPorts {
		conn, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		if err != nil {
			return fmt.Errorf("listen udp %d: %w", port, err)
		}
		go serveUDP(conn, *name)
	}
	fmt.Println("ready")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	return nil
}

func serveTCP(listener net.Listener, name string) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			return
		}
		go func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "%s %s\n", name, conn.RemoteAddr())
		}()
	}
}

func serveUDP(conn net.PacketConn, name string) {
	buf := make([]byte, 2048)
	for {
		_, source, err := conn.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "read udp:", err)
			return
		}
		if _, err := conn.WriteTo(fmt.Appendf(nil, "%s %s\n", name, source), source); err != nil {
			fmt.Fprintln(os.Stderr, "write udp:", err)
		}
	}
}

// Result is what `syecho dial` prints; the testbed decodes the same shape.
type Result struct {
	// Counts maps the answering pod's name to how many attempts it answered.
	Counts map[string]int `json:"counts"`
	// Last is the last successful reply, for single dials.
	Last *Reply `json:"last,omitempty"`
	// Failures counts failed attempts by kind: refused, timeout,
	// filtered, unreachable or other.
	Failures map[string]int `json:"failures"`
	// FirstError describes the first failure.
	FirstError string `json:"firstError,omitempty"`
	// FirstErrorKind is the kind of the first failure.
	FirstErrorKind string `json:"firstErrorKind,omitempty"`
}

// Reply is one parsed answer of the echo server.
type Reply struct {
	Pod    string `json:"pod"`
	Source string `json:"source"`
}

func dial(args []string) error {
	flags := flag.NewFlagSet("dial", flag.ContinueOnError)
	proto := flags.String("proto", "tcp", "tcp or udp")
	addr := flags.String("addr", "", "host:port to connect to")
	count := flags.Int("count", 1, "number of connections")
	timeout := flags.Duration("timeout", 2*time.Second, "timeout of each attempt")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("--addr is required")
	}
	if *proto != "tcp" && *proto != "udp" {
		return fmt.Errorf("--proto must be tcp or udp, not %q", *proto)
	}

	result := Result{Counts: map[string]int{}, Failures: map[string]int{}}
	for range *count {
		reply, err := attempt(*proto, *addr, *timeout)
		if err != nil {
			kind := classify(err)
			result.Failures[kind]++
			if result.FirstError == "" {
				result.FirstError, result.FirstErrorKind = err.Error(), kind
			}
			continue
		}
		result.Counts[reply.Pod]++
		result.Last = &reply
	}
	return json.NewEncoder(os.Stdout).Encode(result)
}

func attempt(proto, addr string, timeout time.Duration) (Reply, error) {
	// A fresh socket per attempt gives a fresh source port, so conntrack
	// sees a new flow and the proxy chooses an endpoint again.
	conn, err := net.DialTimeout(proto, addr, timeout)
	if err != nil {
		return Reply{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return Reply{}, err
	}
	if proto == "udp" {
		// The payload is irrelevant; the server answers any datagram. A
		// REJECT shows up as ECONNREFUSED on the read (ICMP port
		// unreachable on a connected socket), a DROP as a timeout.
		if _, err := conn.Write([]byte("hello\n")); err != nil {
			// A REJECT in the OUTPUT path of this very namespace fails
			// the send with EPERM, but its ICMP error has already been
			// queued on the socket: a read shows ECONNREFUSED. A DROP
			// leaves nothing to read and stays EPERM.
			if errors.Is(err, syscall.EPERM) {
				_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if _, readErr := conn.Read(make([]byte, 1)); errors.Is(readErr, syscall.ECONNREFUSED) {
					return Reply{}, readErr
				}
			}
			return Reply{}, err
		}
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return Reply{}, err
	}
	pod, source, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return Reply{}, fmt.Errorf("malformed reply %q", line)
	}
	return Reply{Pod: pod, Source: source}, nil
}

// classify maps a dial error to the kinds the testbed tells apart: REJECT
// (refused), DROP (timeout), dropped by the client namespace's own OUTPUT
// rules (filtered: the kernel fails the send with EPERM), no route
// (unreachable) and anything else.
func classify(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, syscall.EPERM):
		return "filtered"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	default:
		return "other"
	}
}
