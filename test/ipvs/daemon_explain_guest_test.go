//go:build ipvsguest && linux

package ipvs

// explain's live IPVS mode in the guest: `switchyard explain --live --mode ipvs` reads
// the real IPVS table, ipsets and companion rules the daemon programmed, and its answer
// must agree with what real connections just did.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/pkg/explain"
)

// explainLive runs the real binary's `explain --live --mode ipvs -o json` in the
// guest's namespace (the node), naming the Services through the apiserver.
func explainLive(args ...string) (*explain.Explanation, int, error) {
	argv := append([]string{"explain", "--live", "--mode", "ipvs", "-o", "json",
		"--kubeconfig", guestKubeconfig, "--node", daemonNode}, args...)
	cmd := exec.Command(filepath.Join(guestBinDir, "switchyard"), argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		return nil, 0, err
	}
	if code > 1 || stdout.Len() == 0 {
		return nil, code, fmt.Errorf("switchyard %s: exit %d\n%s", strings.Join(argv, " "), code, stderr.String())
	}
	var e explain.Explanation
	if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
		return nil, code, fmt.Errorf("explain output is not JSON: %w\n%s", err, stdout.String())
	}
	return &e, code, nil
}

// explainAgrees explains a connection from src (in namespace ns) to dst and checks it
// against a real one: the candidate endpoints are exactly the pods named in wantPods
// (the pods traffic reached), and masquerade is what the pod saw (its peer address is
// not the client's). It returns an error to retry while the daemon converges.
func explainAgrees(ns, src, dst string, from explain.From, wantPods []string) error {
	e, code, err := explainLive("--src", src, "--dst", dst, "--from", string(from))
	if err != nil {
		return err
	}
	if e.Verdict != explain.Delivered || code != 0 {
		return fmt.Errorf("explain %s -> %s: %s (exit %d): %s", src, dst, e.Verdict, code, e.Reason)
	}
	var got []string
	for _, ep := range e.Endpoints {
		got = append(got, ep.Address.String())
	}
	var want []string
	for _, pod := range wantPods {
		want = append(want, pods[pod]+":8080")
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("explain %s -> %s: endpoints %v, traffic reached %v", src, dst, got, want)
	}
	c, err := dialFrom(ns, src, dst, 3*time.Second)
	if err != nil {
		return fmt.Errorf("connecting %s -> %s: %w", ns, dst, err)
	}
	defer c.Close()
	seen, err := c.source()
	if err != nil {
		return err
	}
	if masqueraded := seen != src; masqueraded != e.Masquerade {
		return fmt.Errorf("explain %s -> %s says masquerade %v (%s), but %s saw the client as %s",
			src, dst, e.Masquerade, e.MasqueradeReason, c.pod, seen)
	}
	return nil
}

// explainRefuses checks that explain says a connection to dst is rejected (exit 1),
// naming reason, as the real connection just was.
func explainRefuses(src, dst string, from explain.From, reason string) error {
	e, code, err := explainLive("--src", src, "--dst", dst, "--from", string(from))
	if err != nil {
		return err
	}
	if e.Verdict != explain.Rejected || code != 1 || !strings.Contains(e.Reason, reason) {
		return fmt.Errorf("explain %s -> %s: %s (exit %d): %q; want rejected, exit 1, a reason naming %q", src, dst, e.Verdict, code, e.Reason, reason)
	}
	return nil
}
