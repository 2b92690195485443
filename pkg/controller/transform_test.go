package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// heavy adds to an object's metadata what an API server's copy carries and
// Switchyard never reads.
func heavy(meta *metav1.ObjectMeta) {
	meta.UID = types.UID("uid-" + meta.Name)
	meta.ResourceVersion = "42"
	meta.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate}}
	meta.OwnerReferences = []metav1.OwnerReference{{Kind: "Service", Name: meta.Name, UID: "owner"}}
	meta.Finalizers = []string{"example.com/finalizer"}
	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	meta.Labels["app.kubernetes.io/name"] = "web"
	meta.Labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = `{"big":"json"}`
}

// TestTrimForCacheKeepsTheModel checks the informers' transform: the trimmed objects
// convert to exactly the same service ports, endpoints and node facts as the
// originals, the fields nobody reads are gone, the object's identity (for Events) is
// kept, and trimming twice changes nothing more.
//
// mutation-checked: dropping the trigger-time annotation fails "model" (trigger
// times); dropping the service-proxy-name label fails "model" (another proxy's
// Service programmed); dropping the scheduler annotation fails "model"; clearing the
// endpoints' NodeName fails "model" (endpoints); keeping TargetRef fails "unread
// fields gone".
func TestTrimForCacheKeepsTheModel(t *testing.T) {
	services := []*v1.Service{lbLocal(), testService("web", "172.30.0.10"), testUDPService()}
	other := testService("other", "172.30.0.11")
	other.Labels = map[string]string{endpoints.LabelServiceProxyName: "another-proxy"}
	other.Spec.Selector = map[string]string{"app": "other"}
	scheduled := testService("sched", "172.30.0.12")
	scheduled.Annotations = map[string]string{endpoints.SchedulerAnnotation: "sh"}
	services = append(services, other, scheduled)

	ready := lbEndpoint("10.180.0.1", "node1", true)
	ready.Zone = ptr.To("zone-a")
	ready.Hints = &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "zone-a"}}}
	ready.TargetRef = &v1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-abc", UID: "pod-uid"}
	ready.Hostname = ptr.To("web-abc")
	ready.DeprecatedTopology = map[string]string{"kubernetes.io/hostname": "node1"}
	slices := []*discovery.EndpointSlice{
		lbSlice("lb-v4", discovery.AddressTypeIPv4, ready, lbEndpoint("10.180.1.1", "node2", false)),
		testSlice("web", "10.180.0.2", "10.180.0.3"),
		testUDPSlice("10.180.0.4"),
	}
	slices[1].Annotations = map[string]string{endpoints.TriggerTimeAnnotation: "2026-12-02T06:00:00Z"}

	feed := func(svcs []*v1.Service, eps []*discovery.EndpointSlice) *endpoints.Snapshot {
		tracker := endpoints.NewTracker("node1")
		for _, s := range svcs {
			_ = tracker.OnServiceUpdate(s)
		}
		for _, s := range eps {
			_ = tracker.OnEndpointSliceUpdate(s)
		}
		return tracker.Snapshot()
	}
	trim := func(obj any) any {
		out, err := trimForCache(obj)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var trimmedServices []*v1.Service
	for _, s := range services {
		heavy(&s.ObjectMeta)
		trimmedServices = append(trimmedServices, trim(s.DeepCopy()).(*v1.Service))
	}
	var trimmedSlices []*discovery.EndpointSlice
	for _, s := range slices {
		heavy(&s.ObjectMeta)
		trimmedSlices = append(trimmedSlices, trim(s.DeepCopy()).(*discovery.EndpointSlice))
	}

	t.Run("model", func(t *testing.T) {
		want, got := feed(services, slices), feed(trimmedServices, trimmedSlices)
		if diff := cmp.Diff(want.Services, got.Services); diff != "" {
			t.Errorf("service ports (-original +trimmed):\n%s", diff)
		}
		if diff := cmp.Diff(want.Endpoints, got.Endpoints); diff != "" {
			t.Errorf("endpoints (-original +trimmed):\n%s", diff)
		}
		if diff := cmp.Diff(want.TriggerTimes, got.TriggerTimes); diff != "" {
			t.Errorf("trigger times (-original +trimmed):\n%s", diff)
		}
	})
	t.Run("unread fields gone", func(t *testing.T) {
		for _, s := range trimmedServices {
			if s.ManagedFields != nil || s.OwnerReferences != nil || s.Spec.Selector != nil || s.Labels["app.kubernetes.io/name"] != "" || len(s.Annotations) > 1 {
				t.Errorf("service %s keeps unread fields: %+v", s.Name, s.ObjectMeta)
			}
			if s.UID == "" || s.ResourceVersion == "" {
				t.Errorf("service %s lost its identity: %+v", s.Name, s.ObjectMeta)
			}
		}
		for _, s := range trimmedSlices {
			if len(s.Labels) != 1 || s.OwnerReferences != nil || s.ManagedFields != nil {
				t.Errorf("slice %s keeps unread metadata: %+v", s.Name, s.ObjectMeta)
			}
			for _, ep := range s.Endpoints {
				if ep.TargetRef != nil || ep.Hostname != nil || ep.DeprecatedTopology != nil {
					t.Errorf("slice %s endpoint %v keeps unread fields", s.Name, ep.Addresses)
				}
			}
		}
	})
	t.Run("node", func(t *testing.T) {
		n := testNode()
		heavy(&n.ObjectMeta)
		n.Status.Images = []v1.ContainerImage{{Names: []string{"registry.example/huge:1"}, SizeBytes: 1 << 30}}
		want, wantErr := node.FromNode(n.DeepCopy())
		trimmed := trim(n).(*v1.Node)
		got, err := node.FromNode(trimmed)
		if diff := cmp.Diff(want, got); diff != "" || (err == nil) != (wantErr == nil) {
			t.Errorf("node facts (-original +trimmed):\n%s (errors %v, %v)", diff, wantErr, err)
		}
		if trimmed.Status.Images != nil || trimmed.ManagedFields != nil {
			t.Errorf("node keeps its images or managed fields")
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		for _, s := range trimmedServices {
			if diff := cmp.Diff(s, trim(s.DeepCopy())); diff != "" {
				t.Errorf("trimming %s twice (-once +twice):\n%s", s.Name, diff)
			}
		}
		for _, s := range trimmedSlices {
			if diff := cmp.Diff(s, trim(s.DeepCopy())); diff != "" {
				t.Errorf("trimming %s twice (-once +twice):\n%s", s.Name, diff)
			}
		}
	})
}
