package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// testConfigChangeExits checks that Switchyard exits, non-zero and saying why, when
// its configuration file changes, as kube-proxy does so that its DaemonSet restarts
// it with the new configuration.
func (s *suite) testConfigChangeExits(t *testing.T) {
	proxy := s.sy2
	if proxy.ConfigPath == "" {
		t.Fatal("node-2's Switchyard was not started with a config file")
	}
	data, err := os.ReadFile(proxy.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// Replace the file as a ConfigMap update does: a new file renamed over it.
	next := proxy.ConfigPath + ".new"
	if err := os.WriteFile(next, append(data, []byte("# updated\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, proxy.ConfigPath); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proxy.Process.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("switchyard still runs 30s after its config file changed; log:\n%s", proxy.Process.Tail(10))
	}
	if _, err := proxy.Process.Exited(); err == nil {
		t.Errorf("switchyard exited with status 0, want non-zero so that the DaemonSet restarts it")
	}
	log, err := proxy.Log()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "Configuration file changed; exiting") {
		t.Errorf("the log does not say why it exited; last lines:\n%s", proxy.Process.Tail(10))
	}
}
