package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/switchyard-io/switchyard/pkg/ipvs"
	ipvstest "github.com/switchyard-io/switchyard/pkg/ipvs/testing"
	"github.com/switchyard-io/switchyard/pkg/xtables/ruleset"
	xtablestest "github.com/switchyard-io/switchyard/pkg/xtables/testing"
)

// TestIPVSModeRestoresFlushedTables checks that IPVS mode has a canary too: after a
// firewall reload flushes the nat and filter tables, the masquerade rule and
// KUBE-IPVS-FILTER come back within a canary interval or two, not at the next periodic
// full sync (an hour by default; disabled here).
//
// Before the fix, IPVS mode had no canary watcher (and created no canary chains), so
// this test timed out.
func TestIPVSModeRestoresFlushedTables(t *testing.T) {
	cfg := Defaults()
	cfg.Mode = "ipvs"
	cfg.MinSyncPeriod = 10 * time.Millisecond
	cfg.FullSyncPeriod = 0
	cfg.CanaryInterval = 50 * time.Millisecond
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	client := fake.NewClientset()
	c := newController(cfg, "node1", client)
	ipt := xtablestest.NewFake(ruleset.IPv4)
	kernel := ipvs.Kernel{IPVS: ipvstest.NewIPVS(), Links: ipvstest.NewLinks(), IPSets: ipvstest.NewIPSets(), IPTables: ipt, Sysctl: ipvstest.NewSysctl()}
	c.ipvs.openKernel = func(context.Context, v1.IPFamily) (ipvs.Kernel, error) { return kernel, nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := client.CoreV1().Nodes().Create(ctx, testNode(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services("ns").Create(ctx, testService("web", "10.96.0.10"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	programmed := func() (bool, string) {
		nat, _ := ipt.SaveTable(ctx, "nat")
		filter, _ := ipt.SaveTable(ctx, "filter")
		return strings.Contains(string(nat), "-j MASQUERADE") && strings.Contains(string(filter), "-A KUBE-IPVS-FILTER"), string(nat) + string(filter)
	}
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var tables string
		for time.Now().Before(deadline) {
			var ok bool
			if ok, tables = programmed(); ok {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; tables:\n%s", what, tables)
	}
	waitFor("the first sync")

	// A firewall reload: nat and filter replaced by tables without our chains.
	if err := ipt.RestoreWithFlags(ctx, []byte("*nat\nCOMMIT\n*filter\nCOMMIT\n"), xtablestest.RestoreFlags{}); err != nil {
		t.Fatal(err)
	}
	if ok, tables := programmed(); ok {
		t.Fatalf("the flush did not remove the rules:\n%s", tables)
	}
	waitFor("the rules to come back after the flush")
}
