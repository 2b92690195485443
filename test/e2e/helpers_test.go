package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// namespace holds every Service of the suite.
const namespace = "e2e"

// makeService builds a Service in the suite's namespace.
func makeService(name string, tweak func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeClusterIP},
	}
	tweak(svc)
	return svc
}

func tcpPort(name string, port, target int) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: v1.ProtocolTCP, Port: int32(port), TargetPort: intstr.FromInt32(int32(target))}
}

func udpPort(name string, port, target int) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: v1.ProtocolUDP, Port: int32(port), TargetPort: intstr.FromInt32(int32(target))}
}

// ready turns pods into ready endpoints.
func ready(pods ...*testbed.Pod) []testbed.EndpointSpec {
	var endpoints []testbed.EndpointSpec
	for _, pod := range pods {
		endpoints = append(endpoints, testbed.EndpointSpec{Pod: pod})
	}
	return endpoints
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

func names(pods ...*testbed.Pod) []string {
	var out []string
	for _, pod := range pods {
		out = append(out, pod.Name)
	}
	slices.Sort(out)
	return out
}

func keys(counts map[string]int) []string { return slices.Sorted(maps.Keys(counts)) }

// waitForPods dials addr from a client, 20 connections a round, until
// exactly want answer with no failure, or timeout passes; the error says
// what the last round saw. It is how a test waits for one sync to move
// traffic.
func waitForPods(ctx context.Context, from testbed.Client, proto, addr string, want []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		counts, err := testbed.Distribution(ctx, from, proto, addr, 20)
		if err == nil && slices.Equal(keys(counts), want) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting %s for only %v to answer %s %s from %s: last round answered by %v (error: %v)",
				time.Since(start).Round(time.Millisecond), want, proto, addr, from, counts, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForRefused waits until a connection to addr is refused (REJECT), or
// timeout passes.
func waitForRefused(ctx context.Context, from testbed.Client, proto, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		reply, err := testbed.Dial(ctx, from, proto, addr)
		if errors.Is(err, testbed.ErrRefused) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waiting %s for %s %s from %s to be refused: last attempt got reply %+v, error %v", timeout, proto, addr, from, reply, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outcome summarises what a frontend does for a client in one comparable
// string: the sorted set of pods that answered, or the kind of failure.
// Pods of the client's own node are written "local-<n>" (their index on
// that node), and those of its twin node "twin-<n>", so twin nodes with
// symmetric pods compare equal. For a sticky service (ClientIP affinity)
// which pod is chosen is random: only how many answered is comparable.
//
// The set is sampled: outcomeSamples connections, each choosing among the endpoints at
// random. With 24 a three-endpoint frontend missed one pod about once in 5,000 (3 ×
// (2/3)^24), enough for one of the differential's 40 outcomes to differ now and then
// (CI run of 2026-12-02: "b1,twin-1" against "b1,local-1,twin-1"); with 64 it is
// 3 × (2/3)^64 ≈ 2e-11.
func outcome(ctx context.Context, from testbed.Client, proto, addr string, local map[string]string, sticky bool) string {
	if _, err := testbed.Dial(ctx, from, proto, addr); err != nil {
		return "error: " + errorKind(err)
	}
	counts, err := testbed.Distribution(ctx, from, proto, addr, outcomeSamples)
	if err != nil {
		return "flaky: " + errorKind(err)
	}
	if sticky {
		return fmt.Sprintf("sticky to %d pod(s)", len(counts))
	}
	var pods []string
	for pod := range counts {
		if alias, ok := local[pod]; ok {
			pod = alias
		}
		pods = append(pods, pod)
	}
	sort.Strings(pods)
	return strings.Join(pods, ",")
}

// outcomeSamples is how many connections outcome makes to learn a frontend's pods.
const outcomeSamples = 64

func errorKind(err error) string {
	for _, kind := range []error{testbed.ErrRefused, testbed.ErrTimeout, testbed.ErrFiltered, testbed.ErrUnreachable, testbed.ErrOther} {
		if errors.Is(err, kind) {
			return kind.Error()
		}
	}
	return err.Error()
}

// loadLoop opens short connections from a client to addr, in batches, until
// stopped, and counts the attempts and failures: the client side of "no
// connection is lost while ...".
type loadLoop struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	attempts int
	failures []error
}

func startLoad(ctx context.Context, from testbed.Client, proto, addr string) *loadLoop {
	loop := &loadLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(loop.done)
		for {
			select {
			case <-loop.stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			// A batch is one client process; 25 connections take tens of
			// milliseconds, so the gaps between batches are short.
			counts, err := testbed.Distribution(ctx, from, proto, addr, 25)
			loop.mu.Lock()
			for _, n := range counts {
				loop.attempts += n
			}
			if err != nil {
				loop.failures = append(loop.failures, err)
				loop.attempts++ // at least one failed attempt
			}
			loop.mu.Unlock()
			// About 250 connections a second: enough to cover every moment
			// of a restart, without churning through so many source ports
			// that the servers' TIME_WAIT sockets start rejecting reused
			// ones (which would be the test's fault, not the proxy's).
			select {
			case <-loop.stop:
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return loop
}

// finish stops the loop and returns how many connections it made and every
// failed batch.
func (l *loadLoop) finish() (int, []error) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts, l.failures
}

// waitAttempts waits until the loop has made at least n more connections,
// so a test knows the loop really ran across the event it covers.
func (l *loadLoop) waitAttempts(n int, timeout time.Duration) error {
	l.mu.Lock()
	target := l.attempts + n
	l.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		attempts := l.attempts
		l.mu.Unlock()
		if attempts >= target {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("load loop made %d connections in %s, want %d more", attempts-(target-n), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ruleDump is iptables-save and ip6tables-save of a node.
func ruleDump(ctx context.Context, t *testing.T, node *testbed.Node) string {
	t.Helper()
	var dump strings.Builder
	for _, command := range []string{"iptables-save", "ip6tables-save"} {
		output, err := node.Exec(ctx, command)
		if err != nil {
			t.Fatalf("%s on %s: %v", command, node.Name, err)
		}
		dump.WriteString(output)
	}
	return dump.String()
}

var chainDeclaration = regexp.MustCompile(`(?m)^\*(\S+)$|^:(KUBE-\S+) `)

// kubeChains returns the KUBE- chains of a dump as "family table chain".
func kubeChains(dump string) []string {
	var chains []string
	table, family, seenFilter := "", "ipv4", map[string]bool{}
	for _, match := range chainDeclaration.FindAllStringSubmatch(dump, -1) {
		if match[1] != "" {
			table = match[1]
			// iptables-save prints IPv4 first, then ip6tables-save; a table
			// seen again means the IPv6 half started.
			if seenFilter[table] {
				family = "ipv6"
				seenFilter = map[string]bool{}
			}
			seenFilter[table] = true
			continue
		}
		chains = append(chains, family+" "+table+" "+match[2])
	}
	slices.Sort(chains)
	return chains
}

var chainReference = regexp.MustCompile(`KUBE-(?:SVC|SVL|SEP|EXT|FW)-[A-Z2-7]{16}`)

// metricValue returns the value of a sample line "name value" or
// "name{labels} value", summed over label sets.
func metricValue(metrics, name string) (float64, bool) {
	total, found := 0.0, false
	for line := range strings.SplitSeq(metrics, "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		fields := strings.Fields(line)
		value, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		total += value
		found = true
	}
	return total, found
}

// chainsOf returns a predicate matching the entries of kubeChains that are
// per-service chains referenced by rules whose text contains comment
// ("default/kubernetes", say).
func chainsOf(dump, comment string) func(string) bool {
	chains := map[string]bool{}
	for line := range strings.SplitSeq(dump, "\n") {
		if strings.Contains(line, comment) {
			for _, chain := range chainReference.FindAllString(line, -1) {
				chains[chain] = true
			}
		}
	}
	return func(entry string) bool {
		fields := strings.Fields(entry)
		return chains[fields[len(fields)-1]]
	}
}
