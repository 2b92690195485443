package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// stateDump is the part of /debug/state these tests read, decoded by its JSON field
// names (docs/debugging.md), independently of pkg/controller's types.
type stateDump struct {
	Node     string `json:"node"`
	Mode     string `json:"mode"`
	Families []struct {
		Family            string   `json:"family"`
		AppliedGeneration uint64   `json:"appliedGeneration"`
		PendingServices   []string `json:"pendingServices"`
		PendingAll        bool     `json:"pendingAll"`
		LastFullSync      *struct {
			Reason string `json:"reason"`
		} `json:"lastFullSync"`
		AppliedPayload struct {
			SHA256     string `json:"sha256"`
			Bytes      int    `json:"bytes"`
			Generation uint64 `json:"generation"`
		} `json:"appliedPayload"`
	} `json:"families"`
	Snapshot struct {
		Generation uint64 `json:"generation"`
		Services   []struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Ports     []struct {
				Endpoints []struct {
					Address  string `json:"address"`
					Ready    bool   `json:"ready"`
					NodeName string `json:"nodeName"`
				} `json:"endpoints"`
			} `json:"ports"`
		} `json:"services"`
	} `json:"snapshot"`
}

// endpointsOf returns "address@node" of every ready endpoint of a Service in the
// snapshot, sorted; nil when the Service is not in it.
func (d *stateDump) endpointsOf(name string) []string {
	for _, svc := range d.Snapshot.Services {
		if svc.Namespace != namespace || svc.Name != name {
			continue
		}
		out := []string{}
		for _, port := range svc.Ports {
			for _, ep := range port.Endpoints {
				if ep.Ready {
					out = append(out, ep.Address+"@"+ep.NodeName)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	return nil
}

func scrapeState(ctx context.Context, sy *testbed.Switchyard) (*stateDump, error) {
	body, err := sy.DebugState(ctx)
	if err != nil {
		return nil, err
	}
	var dump stateDump
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		return nil, fmt.Errorf("decoding /debug/state: %w\n%s", err, body)
	}
	return &dump, nil
}

// loggedPayloads returns the sha256 of every iptables-restore payload a -v=9 log
// holds, per family, in order. klog writes a multi-line value as "payload=<", then
// each line after a tab, then " >"; restore payloads end with a newline.
func loggedPayloads(log string) map[string][]string {
	out := map[string][]string{}
	lines := strings.Split(log, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if !strings.Contains(line, `"Payload"`) || !strings.Contains(line, `kind="iptables-restore"`) || !strings.HasSuffix(line, "payload=<") {
			continue
		}
		_, family, _ := strings.Cut(line, `family="`)
		family, _, _ = strings.Cut(family, `"`)
		var payload strings.Builder
		for i++; i < len(lines) && lines[i] != " >"; i++ {
			payload.WriteString(strings.TrimPrefix(lines[i], "\t") + "\n")
		}
		sum := sha256.Sum256([]byte(payload.String()))
		out[family] = append(out[family], hex.EncodeToString(sum[:]))
	}
	return out
}

// testStateDump runs a Switchyard at -v=9 (so that it logs every payload) on a node
// of its own and checks its state dump against the API and its own payload log:
//   - /debug/state answers without --profiling; after a Service and its
//     EndpointSlice are created, the dump's snapshot holds them with a newer
//     generation, every family applied it and has nothing pending;
//   - each family's payload digest is the SHA-256 of the last iptables-restore payload
//     the daemon logged for that family, stays the same across scrapes with no change
//     and changes with the change;
//   - SIGUSR1 logs the same document as one line, and does not stop the daemon.
//
// mutation-checked: making iptables.Proxier digest plan.Payload[1:] instead of the
// payload fails "digest is the logged payload"; dropping the signal.Notify in
// startStateDumps (Go then catches SIGUSR1 and does nothing) fails "SIGUSR1 logs
// the dump".
func (s *suite) testStateDump(t *testing.T) {
	ctx := t.Context()
	c := s.cluster
	node := c.AddNode(t, "node-state", map[string]string{v1.LabelTopologyZone: "zone-a"})
	sy := c.AddSwitchyard(t, node, testbed.SwitchyardOptions{ExtraArgs: []string{"--v=9"}})
	t.Cleanup(func() { _ = sy.Process.Stop() })

	before, err := scrapeState(ctx, sy)
	if err != nil {
		t.Fatal(err)
	}
	if before.Node != "node-state" || before.Mode != "iptables" || len(before.Families) != 2 {
		t.Fatalf("dump says node %q, mode %q, %d families; want node-state, iptables, 2", before.Node, before.Mode, len(before.Families))
	}
	t.Run("digest is the logged payload", func(t *testing.T) {
		checkDigests(ctx, t, sy)
	})
	t.Run("no change, same digest", func(t *testing.T) {
		again, err := scrapeState(ctx, sy)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range again.Families {
			if f.AppliedPayload != before.Families[i].AppliedPayload {
				t.Errorf("%s: digest moved without a change: %+v, then %+v", f.Family, before.Families[i].AppliedPayload, f.AppliedPayload)
			}
		}
	})

	svc, err := c.CreateService(ctx, makeService("state-probe", func(svc *v1.Service) {
		svc.Spec.Ports = []v1.ServicePort{tcpPort("http", 80, 80)}
		svc.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), svc) })
	if err := c.PublishEndpoints(ctx, svc, ready(s.b1)); err != nil {
		t.Fatal(err)
	}
	want := []string{s.b1.IP + "@" + s.b1.Node.Name, s.b1.IPv6 + "@" + s.b1.Node.Name}
	slices.Sort(want)

	var after *stateDump
	t.Run("the API change is in the dump", func(t *testing.T) {
		deadline := time.Now().Add(syncWait)
		for {
			after, err = scrapeState(ctx, sy)
			if err != nil {
				t.Fatal(err)
			}
			if settled(after, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := after.endpointsOf("state-probe"); !slices.Equal(got, want) {
			t.Fatalf("snapshot endpoints of state-probe = %v, want %v", got, want)
		}
		for i, f := range after.Families {
			if f.AppliedGeneration <= before.Families[i].AppliedGeneration || f.AppliedGeneration != after.Snapshot.Generation ||
				len(f.PendingServices) != 0 || f.PendingAll {
				t.Errorf("%s: applied generation %d (before the change %d, snapshot %d), pending %v/%v; want newer, the snapshot's, nothing pending",
					f.Family, f.AppliedGeneration, before.Families[i].AppliedGeneration, after.Snapshot.Generation, f.PendingServices, f.PendingAll)
			}
			if f.AppliedPayload.SHA256 == before.Families[i].AppliedPayload.SHA256 || f.AppliedPayload.Generation <= before.Families[i].AppliedPayload.Generation {
				t.Errorf("%s: digest did not move with the change: %+v, then %+v", f.Family, before.Families[i].AppliedPayload, f.AppliedPayload)
			}
		}
		checkDigests(ctx, t, sy)
	})

	t.Run("SIGUSR1 logs the dump", func(t *testing.T) {
		if err := syscall.Kill(sy.Process.Pid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		var logged *stateDump
		deadline := time.Now().Add(syncWait)
		for logged == nil && time.Now().Before(deadline) {
			if exited, err := sy.Process.Exited(); exited {
				t.Fatalf("switchyard exited at SIGUSR1 (%v); log:\n%s", err, sy.Process.Tail(10))
			}
			log, err := sy.Log()
			if err != nil {
				t.Fatal(err)
			}
			for line := range strings.SplitSeq(log, "\n") {
				if !strings.Contains(line, `"State dump"`) {
					continue
				}
				if _, doc, ok := strings.Cut(line, " state="); ok {
					logged = &stateDump{}
					if err := json.Unmarshal([]byte(doc), logged); err != nil {
						t.Fatalf("the logged dump is not JSON: %v\n%s", err, line)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if logged == nil {
			t.Fatalf("no \"State dump\" logged within %s of SIGUSR1; log:\n%s", syncWait, sy.Process.Tail(5))
		}
		if got := logged.endpointsOf("state-probe"); logged.Node != "node-state" || !slices.Equal(got, want) ||
			logged.Snapshot.Generation < after.Snapshot.Generation {
			t.Errorf("logged dump: node %q, state-probe endpoints %v, generation %d; want node-state, %v, at least %d",
				logged.Node, got, logged.Snapshot.Generation, want, after.Snapshot.Generation)
		}
		if exited, err := sy.Process.Exited(); exited {
			t.Errorf("switchyard exited after SIGUSR1: %v", err)
		}
	})
}

// settled reports whether the dump shows the probe's endpoints applied by every
// family.
func settled(d *stateDump, want []string) bool {
	if !slices.Equal(d.endpointsOf("state-probe"), want) {
		return false
	}
	for _, f := range d.Families {
		if f.AppliedGeneration != d.Snapshot.Generation || len(f.PendingServices) != 0 {
			return false
		}
	}
	return true
}

// checkDigests checks that each family's digest is the SHA-256 of the last
// iptables-restore payload the daemon logged for it (the log may trail the dump by
// a moment).
func checkDigests(ctx context.Context, t *testing.T, sy *testbed.Switchyard) {
	t.Helper()
	dump, err := scrapeState(ctx, sy)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(syncWait)
	for {
		log, err := sy.Log()
		if err != nil {
			t.Fatal(err)
		}
		payloads := loggedPayloads(log)
		var mismatch []string
		for _, f := range dump.Families {
			logged := payloads[f.Family]
			if len(logged) == 0 || logged[len(logged)-1] != f.AppliedPayload.SHA256 {
				mismatch = append(mismatch, fmt.Sprintf("%s: digest %s, %d payloads logged, the last %v", f.Family, f.AppliedPayload.SHA256, len(logged), logged[max(len(logged)-1, 0):]))
			}
		}
		if len(mismatch) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the digests are not the last logged payloads':\n%s", strings.Join(mismatch, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
