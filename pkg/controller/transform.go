package controller

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// trimForCache is the informers' transform: each object is cut down to what
// Switchyard reads (pkg/endpoints for Services and EndpointSlices, pkg/node for the
// Node, the handlers' logs and Events for names) before it enters the cache, where
// it stays for the life of the process. At 10k Services × 10 endpoints the cached
// EndpointSlices were the largest part of the steady heap (34 MB of 90 MB, most of
// it each endpoint's targetRef and the slices' labels and owner references); kube-proxy
// drops only managed fields.
//
// It must be idempotent (the informer may pass an object it already trimmed) and
// must only remove: what stays is the object's own data.
func trimForCache(obj any) (any, error) {
	switch o := obj.(type) {
	case *v1.Service:
		trimMeta(&o.ObjectMeta, []string{endpoints.LabelServiceProxyName, endpoints.LabelHeadless}, []string{endpoints.SchedulerAnnotation})
		// The selector is the endpoints controller's business; the conditions are
		// the load balancer controller's.
		o.Spec.Selector = nil
		o.Status.Conditions = nil
	case *discovery.EndpointSlice:
		trimMeta(&o.ObjectMeta, []string{discovery.LabelServiceName}, []string{endpoints.TriggerTimeAnnotation})
		for i := range o.Endpoints {
			ep := &o.Endpoints[i]
			// Which pod an endpoint is, and its DNS name, program nothing.
			ep.TargetRef = nil
			ep.Hostname = nil
			ep.DeprecatedTopology = nil
		}
	case *v1.Node:
		// Only the zone label, addresses, pod CIDRs and deletion are read; the
		// image list alone is often tens of kilobytes.
		o.ManagedFields = nil
		o.Status.Images = nil
		o.Status.VolumesInUse = nil
		o.Status.VolumesAttached = nil
	default:
		return dropManagedFields(obj)
	}
	return obj, nil
}

// trimMeta keeps of an object's metadata its identity (name, namespace, UID,
// resource version, generation, timestamps: Events and logs name the object by them)
// and the labels and annotations named.
func trimMeta(meta *metav1.ObjectMeta, labels, annotations []string) {
	meta.ManagedFields = nil
	meta.OwnerReferences = nil
	meta.Finalizers = nil
	meta.Labels = keepKeys(meta.Labels, labels)
	meta.Annotations = keepKeys(meta.Annotations, annotations)
}

// keepKeys returns the entries of m with the given keys, nil when there are none. A
// map that holds only those keys is returned as it is.
func keepKeys(m map[string]string, keys []string) map[string]string {
	kept := 0
	for _, k := range keys {
		if _, ok := m[k]; ok {
			kept++
		}
	}
	if kept == len(m) {
		return m
	}
	if kept == 0 {
		return nil
	}
	out := make(map[string]string, kept)
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}
