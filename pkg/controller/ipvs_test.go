package controller

import (
	"context"
	"net/netip"
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

// TestIPVSMode runs the daemon in IPVS mode over a fake API server and the strict fake
// kernel: the first sync programs the virtual server, an endpoint removal drains the
// real server, and the termination loop deletes it once its connections are gone.
func TestIPVSMode(t *testing.T) {
	cfg := Defaults()
	cfg.Mode = "ipvs"
	cfg.MinSyncPeriod = 10 * time.Millisecond
	cfg.HealthzBindAddress, cfg.MetricsBindAddress = "", ""
	cfg.IPVS.Scheduler = "lc"
	cfg.IPVS.TerminationCheckInterval = 20 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	c := newController(cfg, "node1", client)
	kernelIPVS := ipvstest.NewIPVS()
	kernel := ipvs.Kernel{IPVS: kernelIPVS, Links: ipvstest.NewLinks(), IPSets: ipvstest.NewIPSets(),
		IPTables: xtablestest.NewFake(ruleset.IPv4), Sysctl: ipvstest.NewSysctl()}
	c.ipvs.openKernel = func(context.Context, v1.IPFamily) (ipvs.Kernel, error) { return kernel, nil }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, obj := range []any{testNode(), testService("web", "10.96.0.10"), testSlice("web", "10.244.1.1", "10.244.1.2")} {
		var err error
		switch o := obj.(type) {
		case *v1.Node:
			_, err = client.CoreV1().Nodes().Create(ctx, o, metav1.CreateOptions{})
		case *v1.Service:
			_, err = client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			_, err = client.DiscoveryV1().EndpointSlices("ns").Create(ctx, testSlice("web", "10.244.1.1", "10.244.1.2"), metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if kernelIPVS.Dump() == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; IPVS:\n%s\nwant:\n%s", what, kernelIPVS.Dump(), want)
	}
	waitFor("the first sync", "-A -t 10.96.0.10:80 -s lc\n-a -t 10.96.0.10:80 -r 10.244.1.1:8080 -m -w 1\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1\n")
	k := ipvs.Key{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: v1.ProtocolTCP}
	if err := kernelIPVS.SetConnections(k, netip.MustParseAddrPort("10.244.1.2:8080"), 1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(ctx, testSlice("web", "10.244.1.1"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the drain", "-A -t 10.96.0.10:80 -s lc\n-a -t 10.96.0.10:80 -r 10.244.1.1:8080 -m -w 1\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n")
	time.Sleep(100 * time.Millisecond) // several termination checks: the connection holds it
	if !strings.Contains(kernelIPVS.Dump(), "10.244.1.2:8080 -m -w 0") {
		t.Fatalf("a real server with a live connection was deleted:\n%s", kernelIPVS.Dump())
	}
	if err := kernelIPVS.SetConnections(k, netip.MustParseAddrPort("10.244.1.2:8080"), 0, 0); err != nil {
		t.Fatal(err)
	}
	waitFor("the deletion", "-A -t 10.96.0.10:80 -s lc\n-a -t 10.96.0.10:80 -r 10.244.1.1:8080 -m -w 1\n")
}

func TestIPVSConfigValidate(t *testing.T) {
	cfg := Defaults()
	cfg.Mode = "ipvs"
	cfg.IPVS.Scheduler = "fastest"
	cfg.IPVS.UDPTimeout = -time.Second
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `--ipvs-scheduler "fastest"`) || !strings.Contains(err.Error(), "--ipvs-udp-timeout") {
		t.Errorf("err = %v", err)
	}
}
