package testbed

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the
// slices PublishEndpoints writes. No kube-controller-manager runs in the
// testbed: tests play the EndpointSlice controller themselves, which lets
// them publish exactly the endpoint states they want to test.
const ManagedBy = "testbed.switchyard.io"

// EndpointSpec is one endpoint to publish: a pod and its conditions. The
// zero conditions mean ready, serving and not terminating.
type EndpointSpec struct {
	// Pod gives the addresses, the nodeName and the zone (from its node's
	// topology.kubernetes.io/zone label).
	Pod *Pod
	// Terminating marks the endpoint terminating (and so not ready).
	Terminating bool
	// NotServing marks the endpoint not serving (and so not ready).
	NotServing bool
	// ZoneHints, if set, become hints.forZones.
	ZoneHints []string
	// NodeHints, if set, become hints.forNodes.
	NodeHints []string
}

// CreateService creates svc (its namespace too, if missing) and returns it
// as stored, with its cluster IPs allocated.
func (c *Cluster) CreateService(ctx context.Context, svc *v1.Service) (*v1.Service, error) {
	if svc.Namespace == "" {
		svc = svc.DeepCopy()
		svc.Namespace = metav1.NamespaceDefault
	}
	if err := c.ensureNamespace(ctx, svc.Namespace); err != nil {
		return nil, err
	}
	created, err := c.Clientset.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return created, nil
}

func (c *Cluster) ensureNamespace(ctx context.Context, name string) error {
	_, err := c.Clientset.CoreV1().Namespaces().Create(ctx,
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Namespace %s: %w", name, err)
	}
	return nil
}

// sliceName is deterministic so that publishing again updates the slice.
func sliceName(svc *v1.Service, family v1.IPFamily) string {
	if family == v1.IPv6Protocol {
		return svc.Name + "-testbed-ipv6"
	}
	return svc.Name + "-testbed-ipv4"
}

// PublishEndpoints does what the EndpointSlice controller would for svc
// (as returned by CreateService): for each of the service's IP families it
// creates or updates one EndpointSlice labelled kubernetes.io/service-name
// and endpointslice.kubernetes.io/managed-by, annotated with
// endpoints.kubernetes.io/last-change-trigger-time (now, RFC 3339 with
// nanoseconds; proxies measure network programming latency from it), with
// the given endpoints and the service's ports (port numbers taken from
// numeric targetPorts, else the service port). An empty endpoints list
// publishes empty slices, as the controller does.
func (c *Cluster) PublishEndpoints(ctx context.Context, svc *v1.Service, endpoints []EndpointSpec) error {
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []v1.IPFamily{v1.IPv4Protocol}
	}
	var ports []discoveryv1.EndpointPort
	for _, port := range svc.Spec.Ports {
		number := port.Port
		if port.TargetPort.IntValue() != 0 {
			number = int32(port.TargetPort.IntValue())
		}
		ports = append(ports, discoveryv1.EndpointPort{
			Name: ptr.To(port.Name), Protocol: ptr.To(port.Protocol), Port: ptr.To(number),
		})
	}
	trigger := time.Now().UTC().Format(time.RFC3339Nano)
	for _, family := range families {
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name:      sliceName(svc, family),
				Namespace: svc.Namespace,
				Labels: map[string]string{
					discoveryv1.LabelServiceName: svc.Name,
					discoveryv1.LabelManagedBy:   ManagedBy,
				},
				Annotations: map[string]string{v1.EndpointsLastChangeTriggerTime: trigger},
			},
			AddressType: discoveryv1.AddressType(family),
			Ports:       ports,
		}
		for _, spec := range endpoints {
			slice.Endpoints = append(slice.Endpoints, endpointFor(spec, family))
		}
		client := c.Clientset.DiscoveryV1().EndpointSlices(svc.Namespace)
		existing, err := client.Get(ctx, slice.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = client.Create(ctx, slice, metav1.CreateOptions{})
		case err == nil:
			slice.ResourceVersion = existing.ResourceVersion
			_, err = client.Update(ctx, slice, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("publishing EndpointSlice %s/%s: %w", svc.Namespace, slice.Name, err)
		}
	}
	return nil
}

func endpointFor(spec EndpointSpec, family v1.IPFamily) discoveryv1.Endpoint {
	address := spec.Pod.IP
	if family == v1.IPv6Protocol {
		address = spec.Pod.IPv6
	}
	endpoint := discoveryv1.Endpoint{
		Addresses: []string{address},
		Conditions: discoveryv1.EndpointConditions{
			Ready:       ptr.To(!spec.Terminating && !spec.NotServing),
			Serving:     ptr.To(!spec.NotServing),
			Terminating: ptr.To(spec.Terminating),
		},
		NodeName:  ptr.To(spec.Pod.Node.Name),
		TargetRef: &v1.ObjectReference{Kind: "Pod", Name: spec.Pod.Name},
	}
	if zone, ok := spec.Pod.Node.Labels[v1.LabelTopologyZone]; ok {
		endpoint.Zone = ptr.To(zone)
	}
	if len(spec.ZoneHints) > 0 || len(spec.NodeHints) > 0 {
		endpoint.Hints = &discoveryv1.EndpointHints{}
		for _, zone := range spec.ZoneHints {
			endpoint.Hints.ForZones = append(endpoint.Hints.ForZones, discoveryv1.ForZone{Name: zone})
		}
		for _, node := range spec.NodeHints {
			endpoint.Hints.ForNodes = append(endpoint.Hints.ForNodes, discoveryv1.ForNode{Name: node})
		}
	}
	return endpoint
}

// DeleteEndpoints deletes the slices PublishEndpoints wrote for svc. Slices
// already gone are not an error.
func (c *Cluster) DeleteEndpoints(ctx context.Context, svc *v1.Service) error {
	for _, family := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		err := c.Clientset.DiscoveryV1().EndpointSlices(svc.Namespace).Delete(ctx, sliceName(svc, family), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting EndpointSlice %s/%s: %w", svc.Namespace, sliceName(svc, family), err)
		}
	}
	return nil
}

// DeleteService deletes svc and the slices PublishEndpoints wrote for it
// (no garbage collector runs in the testbed to do it).
func (c *Cluster) DeleteService(ctx context.Context, svc *v1.Service) error {
	if err := c.DeleteEndpoints(ctx, svc); err != nil {
		return err
	}
	err := c.Clientset.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}
