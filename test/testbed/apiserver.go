package testbed

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// apiServerName is the Process name startEtcdAndAPIServer gives kube-apiserver.
const apiServerName = "kube-apiserver"

// apiServerProcess returns the newest kube-apiserver process of the cluster.
func (c *Cluster) apiServerProcess() (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, process := range slices.Backward(c.processes) {
		if process.Name == apiServerName || strings.HasPrefix(process.Name, apiServerName+"-") {
			return process, nil
		}
	}
	return nil, fmt.Errorf("no kube-apiserver process in cluster %s", c.ID)
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after 5 s),
// leaving etcd running, to test what proxies do during a control-plane
// outage: their watches break and connections to the API are refused.
// StartAPIServer brings it back.
func (c *Cluster) StopAPIServer(t testing.TB) {
	t.Helper()
	process, err := c.apiServerProcess()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if err := process.Stop(); err != nil {
		t.Fatalf("testbed: stopping kube-apiserver: %v", err)
	}
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, with the
// same command line (same certificates, tokens and etcd, so every
// kubeconfig and object stays valid), and waits (bounded) until /readyz
// answers ok. A running kube-apiserver is left alone.
func (c *Cluster) StartAPIServer(t testing.TB) {
	t.Helper()
	if err := c.startAPIServer(); err != nil {
		t.Fatalf("testbed: restarting kube-apiserver: %v", err)
	}
}

func (c *Cluster) startAPIServer() error {
	previous, err := c.apiServerProcess()
	if err != nil {
		return err
	}
	if exited, _ := previous.Exited(); !exited {
		return nil
	}
	// cmd.Args is `ip netns exec NETNS argv...`.
	argv := previous.cmd.Args[4:]
	process, err := c.startProcess(fmt.Sprintf("%s-%d", apiServerName, time.Now().UnixNano()), c.Netns, nil, argv...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.waitAPIServerReady(ctx, process, "the restarted kube-apiserver's /readyz")
}
