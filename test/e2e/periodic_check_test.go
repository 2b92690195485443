package e2e

// The periodic check that replaces iptables mode's periodic full sync (issue 11, item
// 3; docs/reliability.md "Full syncs"), on the testbed: rules are tampered with behind
// Switchyard's back in ways that leave web's traffic flowing, and the next periodic
// check rewrites exactly the tampered chains, without a full sync, while a probe
// connecting to web throughout sees no failure.
//
//	node-1  switchyard --full-sync-period=3s   pods p1 p2 (web's endpoints), client

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// checkPeriod is --full-sync-period here: short, so that a check comes soon.
const checkPeriod = 3 * time.Second

// TestPeriodicCheck runs the scenario once per iptables backend.
// mutation-checked: watchPeriodic (pkg/controller) returning at once fails the
// convergence wait ("the tampered rules were not repaired within 39s").
func TestPeriodicCheck(t *testing.T) {
	testbed.Require(t)
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testPeriodicCheck(t, backend)
		})
	}
}

func testPeriodicCheck(t *testing.T, backend string) {
	ctx := t.Context()
	cluster := testbed.StartControlPlane(t, testbed.WithIPTablesBackend(backend))
	node := cluster.AddNode(t, "node-1", nil)
	p1, p2, client := cluster.AddPod(t, node, "p1"), cluster.AddPod(t, node, "p2"), cluster.AddPod(t, node, "client")
	web, err := cluster.CreateService(ctx, makeService("web", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.PublishEndpoints(ctx, web, ready(p1, p2)); err != nil {
		t.Fatal(err)
	}
	sy := cluster.AddSwitchyard(t, node, testbed.SwitchyardOptions{
		AsKubeProxy: true,
		Kubeconfig:  cluster.AdminKubeconfig,
		ExtraArgs:   []string{"--full-sync-period=" + checkPeriod.String(), "--v=2"},
	})
	converged := func() bool { return dryRunDiffOn(ctx, t, node, sy.ConfigPath, backend).exitCode == 0 }
	if !waitUntil(30*time.Second, converged) {
		t.Fatalf("before tampering: dry-run --diff never exited 0")
	}
	addr := hostPort(web.Spec.ClusterIP, 80)
	if err := waitForPods(ctx, client, "tcp", addr, names(p1, p2), syncWait); err != nil {
		t.Fatal(err)
	}

	// The probe: new connections from the client pod to web, back to back.
	var ok, failed atomic.Int64
	var failures []string
	var mu sync.Mutex
	stop := make(chan struct{})
	var probe sync.WaitGroup
	probe.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := testbed.Dial(ctx, client, "tcp", addr); err != nil {
				failed.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				mu.Unlock()
			} else {
				ok.Add(1)
			}
		}
	})

	// Tamper: delete the first rule of web's KUBE-SVC chain (its masquerade rule, or
	// one endpoint's jump: the other endpoint still answers), append a rule to
	// KUBE-MARK-MASQ (after the mark: harmless), and add a stale endpoint chain.
	saved, err := node.Exec(ctx, "iptables-save", "-t", "nat")
	if err != nil {
		t.Fatal(err)
	}
	svcChain := ""
	for line := range strings.SplitSeq(saved, "\n") {
		if strings.HasPrefix(line, "-A KUBE-SERVICES ") && strings.Contains(line, namespace+"/web:http cluster IP") {
			fields := strings.Fields(line)
			svcChain = fields[len(fields)-1]
		}
	}
	if svcChain == "" {
		t.Fatalf("no KUBE-SERVICES jump of web:\n%s", saved)
	}
	const stale = "KUBE-SEP-E2ESTALE00000000"
	tampered := time.Now()
	for _, argv := range [][]string{
		{"iptables", "-w", "5", "-t", "nat", "-D", svcChain, "1"},
		{"iptables", "-w", "5", "-t", "nat", "-A", "KUBE-MARK-MASQ", "-j", "RETURN"},
		{"iptables", "-w", "5", "-t", "nat", "-N", stale},
	} {
		if output, err := node.Exec(ctx, argv...); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, output)
		}
	}
	if !waitUntil(3*checkPeriod+30*time.Second, converged) {
		t.Fatalf("the tampered rules were not repaired within %s", 3*checkPeriod+30*time.Second)
	}
	repaired := time.Since(tampered)
	// Let a few more checks run under the probe.
	time.Sleep(2 * checkPeriod)
	close(stop)
	probe.Wait()

	log, err := sy.Log()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("repaired by the periodic check", func(t *testing.T) {
		var drift string
		for line := range strings.SplitSeq(log, "\n") {
			if strings.Contains(line, `"Rules drifted from what was applied"`) && strings.Contains(line, `family="IPv4"`) {
				drift = line
			}
		}
		for _, want := range []string{"nat/" + svcChain, "nat/KUBE-MARK-MASQ", "nat/" + stale, "repaired=true"} {
			if !strings.Contains(drift, want) {
				t.Errorf("the drift log line lacks %s: %q", want, drift)
			}
		}
	})
	t.Run("full syncs", func(t *testing.T) {
		full := 0
		for line := range strings.SplitSeq(log, "\n") {
			if strings.Contains(line, `"Synced"`) && strings.Contains(line, `family="IPv4"`) && strings.Contains(line, `sync="full"`) {
				full++
			}
		}
		if full != 1 {
			t.Errorf("%d full syncs of IPv4, want 1 (the first)", full)
		}
	})
	t.Run("probe", func(t *testing.T) {
		if failed.Load() != 0 || ok.Load() < 20 {
			t.Errorf("probe: %d connections, %d failed, want many and none failed: %v", ok.Load()+failed.Load(), failed.Load(), failures)
		}
	})
	t.Logf("backend %s: tampered chains repaired (dry-run --diff exit 0) %s after the tampering, check period %s; probe %d connections, %d failed",
		backend, repaired.Round(time.Millisecond), checkPeriod, ok.Load()+failed.Load(), failed.Load())
}

// waitUntil polls cond every 200 ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}
