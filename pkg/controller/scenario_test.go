package controller

// Scenario tests: one file per behaviour under testdata/scenarios/<mode>/, commands in,
// the exact kernel writes out, so a reviewer sees what a one-endpoint change writes.
// The format follows cockroachdb/datadriven, as raft's interaction tests use it:
//
//	# comment
//	command arg...
//	----
//	expected output
//	<blank line>
//
// Regenerate with `go test ./pkg/controller -run TestScenarios -rewrite` and review the
// diff. Commands:
//
//	set-service NAME IP [udp] [nodeport=N] [local]   add or replace a Service (port 80, or 53/UDP)
//	set-slice NAME [IP[@NODE][~]...]               replace its EndpointSlice (~: terminating, not ready)
//	delete-service NAME / delete-slice NAME
//	extra-snapshot                                  take a snapshot nobody syncs
//	fail-restore [N]                                the next N iptables-restores fail
//	fail-netlink OP                                 the next IPVS netlink operation OP fails (AddRealServer, …)
//	fail-nft [N]                                    the next N nftables transactions fail
//	flush-table TABLE                               replace TABLE by an empty one (a firewall reload); in
//	                                                nftables mode, delete the kube-proxy table
//	canary                                          run one canary check
//	advance DURATION                                move the clock
//	sync                                            run one sync; prints each family's kind and reason,
//	                                                then what was written: iptables-restore input, ipset
//	                                                restore input, IPVS and address operations
//
// IP plan as in controller_test.go: node1 192.168.0.2, services 172.30.0.0/16, pods
// 10.180.0.0/16 (node1) and 10.180.1.0/16 (node2).

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	conntracktest "github.com/switchyard-io/switchyard/pkg/conntrack/testing"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstest "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	"github.com/switchyard-io/switchyard/pkg/nftables"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/xtables"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the scenario files' expected output")

func TestScenarios(t *testing.T) {
	for _, mode := range []string{"iptables", "ipvs", "nftables"} {
		files, err := filepath.Glob(filepath.Join("testdata", "scenarios", mode, "*.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no scenarios for mode %s", mode)
		}
		for _, file := range files {
			t.Run(mode+"/"+strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
				runScenario(t, mode, file)
			})
		}
	}
}

// scenarioStep is one command of a scenario file and its expected output.
type scenarioStep struct {
	line     int
	command  string
	expected string
}

// parseScenario reads a scenario file; comments and blank lines between steps are
// kept in order to be written back by -rewrite.
func parseScenario(t *testing.T, file string) ([]scenarioStep, []string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []scenarioStep
	var preambles []string // text before each step
	var pre strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			pre.WriteString(line + "\n")
			continue
		}
		step := scenarioStep{line: n, command: line}
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s:%d: %q is not followed by ----", file, n, line)
		}
		n++
		var out []string
		for sc.Scan() {
			n++
			if sc.Text() == "" {
				break
			}
			out = append(out, sc.Text())
		}
		step.expected = strings.Join(out, "\n")
		steps = append(steps, step)
		preambles = append(preambles, pre.String())
		pre.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return steps, preambles
}

func runScenario(t *testing.T, mode, file string) {
	steps, preambles := parseScenario(t, file)
	w := newScenarioWorld(t, mode)
	var rewritten strings.Builder
	for i, step := range steps {
		got := strings.TrimRight(w.run(t, step.command), "\n")
		if got == "" {
			got = "ok"
		}
		if *rewrite {
			fmt.Fprintf(&rewritten, "%s%s\n----\n%s\n\n", preambles[i], step.command, got)
			continue
		}
		if diff := cmp.Diff(step.expected, got); diff != "" {
			t.Errorf("%s:%d: %s (-want +got):\n%s", file, step.line, step.command, diff)
		}
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(strings.TrimRight(rewritten.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scenarioWorld is a controller over fake kernels whose writes are recorded.
type scenarioWorld struct {
	ctx      context.Context
	c        *Controller
	clock    time.Time
	ipt      *xtablestest.Fake
	ipvs     *ipvstest.IPVS
	nft      *recordingNFT
	log      *opLog
	restores int // iptables restores already printed
	results  []string
}

// opLog records kernel writes other than iptables-restore, in order.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
}

func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

// recordingIPSets and recordingLinks log what IPVS mode writes through them.
type recordingIPSets struct {
	ipvs.IPSets
	log *opLog
}

func (r recordingIPSets) Restore(ctx context.Context, payload []byte) error {
	r.log.add("ipset restore:\n" + strings.TrimRight(string(payload), "\n"))
	return r.IPSets.Restore(ctx, payload)
}

type recordingLinks struct {
	ipvs.Links
	log *opLog
}

func (r recordingLinks) AddAddress(name string, ip netip.Addr) error {
	r.log.add("ip address add " + ip.String() + " dev " + name)
	return r.Links.AddAddress(name, ip)
}

func (r recordingLinks) DeleteAddress(name string, ip netip.Addr) error {
	r.log.add("ip address del " + ip.String() + " dev " + name)
	return r.Links.DeleteAddress(name, ip)
}

func newScenarioWorld(t *testing.T, mode string) *scenarioWorld {
	t.Helper()
	cfg := Defaults()
	cfg.Mode = mode
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	cfg.FullSyncPeriod = time.Hour
	w := &scenarioWorld{
		ctx: context.Background(), clock: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		ipt: xtablestest.NewFake(ruleset.IPv4), ipvs: ipvstest.NewIPVS(), log: &opLog{},
	}
	w.c = newController(cfg, "node1", fake.NewClientset())
	w.c.now = func() time.Time { return w.clock }
	w.c.newIPTables = func(context.Context, v1.IPFamily) (xtables.Interface, error) { return w.ipt, nil }
	w.c.ipvs.openKernel = func(context.Context, v1.IPFamily) (ipvs.Kernel, error) {
		return ipvs.Kernel{IPVS: w.ipvs, Links: recordingLinks{ipvstest.NewLinks(), w.log},
			IPSets: recordingIPSets{ipvstest.NewIPSets(), w.log}, IPTables: w.ipt, Sysctl: ipvstest.NewSysctl()}, nil
	}
	w.nft = newRecordingNFT(w.log)
	w.c.nftables.openKernel = func(context.Context, v1.IPFamily) (nftables.Kernel, error) { return w.nft, nil }
	w.c.conntrack = &conntracktest.Fake{}
	w.c.onSynced = func(family v1.IPFamily, res proxy.Result, err error) {
		line := fmt.Sprintf("%s: %s", family, res.Kind())
		if res.Full {
			line += " (" + res.Reason + ")"
		}
		if err != nil {
			line += " failed: " + err.Error()
		}
		w.results = append(w.results, line)
	}
	t.Cleanup(w.c.services.Close)
	facts, err := node.FromNode(testNode())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.buildProviders(w.ctx, facts); err != nil {
		t.Fatal(err)
	}
	return w
}

// run executes one command and returns its output.
func (w *scenarioWorld) run(t *testing.T, command string) string {
	t.Helper()
	args := strings.Fields(command)
	count := func() int {
		if len(args) < 2 {
			return 1
		}
		n, err := strconv.Atoi(args[1])
		if err != nil {
			t.Fatalf("%s: %v", command, err)
		}
		return n
	}
	switch args[0] {
	case "set-service":
		w.c.serviceHandler(w.ctx).OnAdd(scenarioService(t, args[1:]), false)
	case "set-slice":
		w.c.sliceHandler(w.ctx).OnAdd(scenarioSlice(t, args[1], args[2:]), false)
	case "delete-service":
		w.c.serviceHandler(w.ctx).OnDelete(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: args[1]}})
	case "delete-slice":
		w.c.sliceHandler(w.ctx).OnDelete(&discovery.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: args[1] + "-1",
			Labels: map[string]string{discovery.LabelServiceName: args[1]}}})
	case "extra-snapshot":
		return fmt.Sprintf("generation %d", w.c.tracker.Snapshot().Generation)
	case "fail-restore":
		for range count() {
			w.ipt.FailNext("Restore", errInjected)
		}
	case "fail-netlink":
		w.ipvs.FailNext(args[1], errorString("injected netlink failure"))
	case "fail-nft":
		w.nft.failNext(count())
	case "flush-table":
		if w.c.cfg.Mode == "nftables" {
			if err := w.nft.deleteTable(w.ctx); err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := w.ipt.RestoreWithFlags(w.ctx, []byte("*"+args[1]+"\nCOMMIT\n"), xtablestest.RestoreFlags{}); err != nil {
			t.Fatal(err)
		}
		w.restores = len(w.ipt.Restores())
	case "canary":
		providers, _ := w.c.currentProviders()
		var out []string
		for _, p := range providers {
			ok, err := p.CheckKernel(w.ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s: canary present: %v", p.Family(), ok))
		}
		w.c.checkCanaries(w.ctx)
		return strings.Join(out, "\n")
	case "advance":
		d, err := time.ParseDuration(args[1])
		if err != nil {
			t.Fatal(err)
		}
		w.clock = w.clock.Add(d)
	case "sync":
		return w.sync()
	default:
		t.Fatalf("unknown command %q", command)
	}
	return ""
}

// sync runs one sync and prints its results and every kernel write.
func (w *scenarioWorld) sync() string {
	w.results = nil
	w.ipvs.ResetOps()
	_ = w.c.sync(w.ctx) // failures are printed per family
	var out []string
	out = append(out, w.results...)
	restores := w.ipt.Restores()
	for _, payload := range restores[w.restores:] {
		out = append(out, "iptables-restore --noflush:", strings.TrimRight(string(payload), "\n"))
	}
	w.restores = len(restores)
	out = append(out, w.log.take()...)
	for _, op := range w.ipvs.Ops() {
		out = append(out, "ipvs: "+op)
	}
	return strings.Join(out, "\n")
}

// scenarioService builds Service NAME with cluster IP IP from set-service's arguments.
func scenarioService(t *testing.T, args []string) *v1.Service {
	t.Helper()
	if len(args) < 2 {
		t.Fatalf("set-service NAME IP [udp] [nodeport=N] [local]: got %v", args)
	}
	svc := testService(args[0], args[1])
	for _, opt := range args[2:] {
		switch {
		case opt == "udp":
			svc.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}
		case opt == "local":
			svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		case strings.HasPrefix(opt, "nodeport="):
			n, err := strconv.Atoi(strings.TrimPrefix(opt, "nodeport="))
			if err != nil {
				t.Fatal(err)
			}
			svc.Spec.Type = v1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = int32(n)
		default:
			t.Fatalf("set-service: unknown option %q", opt)
		}
	}
	return svc
}

// scenarioSlice builds the EndpointSlice of service NAME. Its port matches the
// Service's: http 8080, or dns 53/UDP for services named dns*.
func scenarioSlice(t *testing.T, name string, eps []string) *discovery.EndpointSlice {
	t.Helper()
	slice := testSlice(name)
	delete(slice.Annotations, v1.EndpointsLastChangeTriggerTime) // its value is the wall clock
	if strings.HasPrefix(name, "dns") {
		slice.Ports = []discovery.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)}}
	}
	for _, e := range eps {
		ip, nodeName := e, "node1"
		terminating := strings.HasSuffix(ip, "~")
		ip = strings.TrimSuffix(ip, "~")
		if at := strings.Index(ip, "@"); at >= 0 {
			ip, nodeName = ip[:at], ip[at+1:]
		}
		slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(nodeName),
			Conditions: discovery.EndpointConditions{Ready: ptr.To(!terminating), Serving: ptr.To(true), Terminating: ptr.To(terminating)}})
	}
	return slice
}
