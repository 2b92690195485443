package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// diffRun is one `switchyard dry-run --diff` on a node.
type diffRun struct {
	exitCode int
	output   string // stdout and stderr
}

// dryRunDiff runs `switchyard dry-run --diff` in node-1's namespace the way an operator
// would on the node: with the daemon's own configuration file (which names the
// kubeconfig) and its node name and backend.
func (s *suite) dryRunDiff(ctx context.Context, t *testing.T, backend string) diffRun {
	t.Helper()
	return dryRunDiffOn(ctx, t, s.node1, s.sy1.ConfigPath, backend)
}

// dryRunDiffOn runs `switchyard dry-run --diff` in node's namespace with a daemon's
// configuration file, the node's name and the backend.
func dryRunDiffOn(ctx context.Context, t *testing.T, node *testbed.Node, configPath, backend string) diffRun {
	t.Helper()
	binary, err := testbed.SwitchyardBinary()
	if err != nil {
		t.Fatal(err)
	}
	output, err := node.Exec(ctx, binary, "dry-run", "--diff", "--config", configPath,
		"--node", node.Name, "--iptables-backend", backend)
	run := diffRun{output: output}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		run.exitCode = exitErr.ExitCode()
	default:
		t.Fatalf("dry-run --diff: %v", err)
	}
	return run
}

// testDryRunDiff checks `dry-run --diff` against node-1's live kernel and the real
// apiserver: in sync after the daemon's many partial syncs (every earlier subtest
// changed services and endpoints), a rule deleted behind the daemon's back is named
// with exit 1, and after the daemon's next full sync (a restart) it is in sync again;
// so is an endpoint change made through the API while the daemon is down.
// mutation-checked: comparing the shared chains in order (no setOrder in
// pkg/rulediff) fails the first check, with e2e/scale's KUBE-SERVICES rule (added by
// a partial sync, so at the top) moved to its sorted place.
func (s *suite) testDryRunDiff(t *testing.T, backend string) {
	ctx := t.Context()
	if run := s.dryRunDiff(ctx, t, backend); run.exitCode != 0 || run.output != "" {
		t.Fatalf("after the daemon's syncs: exit %d, want 0 and no output:\n%s", run.exitCode, run.output)
	}

	// Delete one endpoint chain's DNAT rule (its last) behind the daemon's back.
	saved, err := s.node1.Exec(ctx, "iptables-save", "-t", "nat")
	if err != nil {
		t.Fatal(err)
	}
	var chain, destination string
	rules := map[string]int{}
	for _, line := range strings.Split(saved, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "-A" || !strings.HasPrefix(fields[1], "KUBE-SEP-") {
			continue
		}
		rules[fields[1]]++
		if chain == "" && strings.Contains(line, "--to-destination") {
			chain, destination = fields[1], fields[len(fields)-1]
		}
	}
	if chain == "" {
		t.Fatalf("no KUBE-SEP chain with a DNAT rule on node-1:\n%s", saved)
	}
	if output, err := s.node1.Exec(ctx, "iptables", "-w", "5", "-t", "nat", "-D", chain, strconv.Itoa(rules[chain])); err != nil {
		t.Fatalf("deleting %s's DNAT: %v\n%s", chain, err, output)
	}
	run := s.dryRunDiff(ctx, t, backend)
	if run.exitCode != 1 {
		t.Errorf("after deleting %s's DNAT: exit %d, want 1:\n%s", chain, run.exitCode, run.output)
	}
	var missing string
	for _, line := range strings.Split(run.output, "\n") {
		if strings.HasPrefix(line, "+-A "+chain+" ") && strings.HasSuffix(line, "-j DNAT --to-destination "+destination) {
			missing = line
		}
	}
	if missing == "" || !strings.Contains(run.output, "--- kernel ip nat\n+++ switchyard ip nat\n") {
		t.Errorf("the diff does not restore %s's DNAT to %s:\n%s", chain, destination, run.output)
	}
	t.Logf("exit %d, the diff names: %s", run.exitCode, missing)

	// The daemon's next full sync (at start) rewrites the rule.
	if err := s.sy1.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if run := s.dryRunDiff(ctx, t, backend); run.exitCode != 0 || run.output != "" {
		t.Errorf("after the daemon's full sync: exit %d, want 0 and no output:\n%s", run.exitCode, run.output)
	}

	// An API change while the daemon is down: the diff adds the new endpoint (a2,
	// which no other subtest gives e2e/scale); the restarted daemon programs it.
	if err := s.sy1.Process.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.cluster.PublishEndpoints(ctx, s.svc("scale"), ready(s.a2)); err != nil {
		t.Fatal(err)
	}
	run = s.dryRunDiff(ctx, t, backend)
	added := false
	for _, line := range strings.Split(run.output, "\n") {
		added = added || (strings.HasPrefix(line, "+-A KUBE-SEP-") && strings.Contains(line, "-j DNAT --to-destination "+s.a2.IP+":"))
	}
	if run.exitCode != 1 || !added {
		t.Errorf("with e2e/scale moved to a2 and the daemon down: exit %d, want 1 and a DNAT to %s added:\n%s", run.exitCode, s.a2.IP, run.output)
	}
	if err := s.sy1.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if run := s.dryRunDiff(ctx, t, backend); run.exitCode != 0 || run.output != "" {
		t.Errorf("after the restarted daemon's sync: exit %d, want 0 and no output:\n%s", run.exitCode, run.output)
	}
}
