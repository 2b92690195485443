package controller

// IP plan: see controller_test.go.

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// TestProblemsReportedOnce feeds the informer handlers what a real informer delivers
// for problem objects: an add, resyncs of the unchanged object, an unrelated change, a
// changed problem, a fix and a delete. Each problem object gets exactly one Event and
// one increment of switchyard_invalid_objects_total{kind,reason} per distinct problem,
// and a valid object none.
//
// mutation-checked: making problemLog.observe ignore what it already reported (no
// deduplication) fails the resync steps; dropping the forget on delete fails the
// "deleted and recreated" step.
func TestProblemsReportedOnce(t *testing.T) {
	c := newController(Defaults(), "node1", fake.NewClientset())
	recorder := record.NewFakeRecorder(100)
	c.events = recorder
	ctx := context.Background()
	services, slices := c.serviceHandler(ctx), c.sliceHandler(ctx)

	badIP := testService("bad-ip", "172.30.0.11")
	badIP.Spec.ExternalIPs = []string{"not-an-ip"}
	good := testService("good", "172.30.0.12")
	noLabel := testSlice("orphan", "10.180.0.1")
	delete(noLabel.Labels, discovery.LabelServiceName)

	type step struct {
		name       string
		do         func()
		wantEvents []string
		wantCount  map[string]float64
	}
	twoBadIPs := badIP.DeepCopy()
	twoBadIPs.Spec.ExternalIPs = []string{"also-not-an-ip"}
	fixed := badIP.DeepCopy()
	fixed.Spec.ExternalIPs = nil
	relabelled := badIP.DeepCopy()
	relabelled.Labels = map[string]string{"team": "x"}
	for _, st := range []step{
		{
			name: "added",
			do: func() {
				services.OnAdd(badIP, true)
				services.OnAdd(good, true)
				slices.OnAdd(noLabel, true)
			},
			wantEvents: []string{
				"Warning InvalidExternalIP switchyard cannot program all of this Service: service ns/bad-ip: external IP \"not-an-ip\": ParseAddr(\"not-an-ip\"): unable to parse IP",
				"Warning NoServiceLabel switchyard cannot program all of this EndpointSlice: endpointslice ns/orphan-1: no kubernetes.io/service-name label, so it belongs to no service",
			},
			wantCount: map[string]float64{"Service/InvalidExternalIP": 1, "EndpointSlice/NoServiceLabel": 1},
		},
		{
			name: "resynced twice",
			do: func() {
				for range 2 {
					services.OnUpdate(badIP, badIP)
					services.OnUpdate(good, good)
					slices.OnUpdate(noLabel, noLabel)
				}
			},
			wantCount: map[string]float64{"Service/InvalidExternalIP": 1, "EndpointSlice/NoServiceLabel": 1},
		},
		{
			name:      "an unrelated change keeps the same problem",
			do:        func() { services.OnUpdate(badIP, relabelled) },
			wantCount: map[string]float64{"Service/InvalidExternalIP": 1, "EndpointSlice/NoServiceLabel": 1},
		},
		{
			name: "a different problem is reported",
			do:   func() { services.OnUpdate(relabelled, twoBadIPs) },
			wantEvents: []string{
				"Warning InvalidExternalIP switchyard cannot program all of this Service: service ns/bad-ip: external IP \"also-not-an-ip\": ParseAddr(\"also-not-an-ip\"): unable to parse IP",
			},
			wantCount: map[string]float64{"Service/InvalidExternalIP": 2, "EndpointSlice/NoServiceLabel": 1},
		},
		{
			name: "fixed, then broken again",
			do:   func() { services.OnUpdate(twoBadIPs, fixed); services.OnUpdate(fixed, twoBadIPs) },
			wantEvents: []string{
				"Warning InvalidExternalIP switchyard cannot program all of this Service: service ns/bad-ip: external IP \"also-not-an-ip\": ParseAddr(\"also-not-an-ip\"): unable to parse IP",
			},
			wantCount: map[string]float64{"Service/InvalidExternalIP": 3, "EndpointSlice/NoServiceLabel": 1},
		},
		{
			name: "deleted and recreated",
			do: func() {
				slices.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/orphan-1", Obj: noLabel})
				slices.OnAdd(noLabel, false)
			},
			wantEvents: []string{
				"Warning NoServiceLabel switchyard cannot program all of this EndpointSlice: endpointslice ns/orphan-1: no kubernetes.io/service-name label, so it belongs to no service",
			},
			wantCount: map[string]float64{"Service/InvalidExternalIP": 3, "EndpointSlice/NoServiceLabel": 2},
		},
	} {
		st.do()
		var got []string
		for len(recorder.Events) > 0 {
			got = append(got, <-recorder.Events)
		}
		if diff := cmp.Diff(st.wantEvents, got); diff != "" {
			t.Errorf("%s: Events (-want +got):\n%s", st.name, diff)
		}
		if diff := cmp.Diff(st.wantCount, invalidObjectCounts(t, c)); diff != "" {
			t.Errorf("%s: switchyard_invalid_objects_total (-want +got):\n%s", st.name, diff)
		}
	}
}

// invalidObjectCounts returns switchyard_invalid_objects_total by "kind/reason".
func invalidObjectCounts(t *testing.T, c *Controller) map[string]float64 {
	t.Helper()
	families, err := c.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, family := range families {
		if family.GetName() != "switchyard_invalid_objects_total" {
			continue
		}
		for _, m := range family.GetMetric() {
			counts[fmt.Sprintf("%s/%s", label(m, "kind"), label(m, "reason"))] = m.GetCounter().GetValue()
		}
	}
	return counts
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
