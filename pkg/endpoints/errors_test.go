package endpoints

// IP plan: see helpers_test.go.

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// TestReason checks the reason each kind of bad object is reported with: the
// controller's Event reason and the reason label of switchyard_invalid_objects_total.
// A well-formed object has no error at all (so no Event and no count).
//
// mutation-checked: giving the external-IP failure ReasonInvalidClusterIP fails the
// "external IP" case.
func TestReason(t *testing.T) {
	for _, tc := range []struct {
		name    string
		service *v1.Service
		slice   *discovery.EndpointSlice
		want    string // "" means no error
	}{
		{name: "well-formed service", service: makeService("ns", "ok")},
		{name: "external IP", want: ReasonInvalidExternalIP, service: makeService("ns", "s", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"bad"} })},
		{name: "source range", want: ReasonInvalidSourceRange, service: makeService("ns", "s", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.LoadBalancerSourceRanges = []string{"::ffff:0:0/95"}
		})},
		{name: "affinity timeout", want: ReasonInvalidAffinityTimeout, service: makeService("ns", "s", func(s *v1.Service) {
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr[int32](86401)}}
		})},
		{name: "duplicate port", want: ReasonDuplicatePort, service: makeService("ns", "s", func(s *v1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, s.Spec.Ports[0])
		})},
		{name: "quote in namespace", want: ReasonInvalidName, service: makeService(`sh"op`, "s")},
		{name: "space in port name", want: ReasonInvalidPort, service: makeService("ns", "s", func(s *v1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "p 81", Port: 81})
		})},
		{name: "two problems, first wins", want: ReasonInvalidClusterIP, service: makeService("ns", "s", func(s *v1.Service) {
			s.Spec.ClusterIPs = []string{"10.96.0.10", "10.96.0.11"}
			s.Spec.ExternalIPs = []string{"bad"}
		})},
		{name: "well-formed slice", slice: makeSlice("ns", "s", "s-1", []discovery.Endpoint{makeEndpoint("10.0.0.1", "")})},
		{name: "no service label", want: ReasonNoServiceLabel, slice: makeSlice("ns", "", "s-1", nil)},
		{name: "address of the wrong family", want: ReasonEndpointFamilyMismatch, slice: makeSlice("ns", "s", "s-1", []discovery.Endpoint{makeEndpoint("fd00::1", "")})},
		{name: "unparseable address", want: ReasonInvalidEndpointAddress, slice: makeSlice("ns", "s", "s-1", []discovery.Endpoint{makeEndpoint("10.0.0.300", "")})},
		{name: "zoned address", want: ReasonInvalidEndpointAddress, slice: makeSlice("ns", "s", "s-1", []discovery.Endpoint{makeEndpoint("fe80::1%eth0", "")}, func(s *discovery.EndpointSlice) {
			s.AddressType = discovery.AddressTypeIPv6
		})},
		{name: "trigger time", want: ReasonInvalidTriggerTime, slice: makeSlice("ns", "s", "s-1", nil, func(s *discovery.EndpointSlice) {
			s.Annotations = map[string]string{TriggerTimeAnnotation: "yesterday"}
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracker := NewTracker("node1")
			var err error
			if tc.service != nil {
				err = tracker.OnServiceUpdate(tc.service)
			} else {
				err = tracker.OnEndpointSliceUpdate(tc.slice)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want reason %s", tc.want)
			}
			if got := Reason(err); got != tc.want {
				t.Errorf("Reason = %s, want %s (error: %v)", got, tc.want, err)
			}
		})
	}
	if got := Reason(errors.New("plain")); got != ReasonInvalidObject {
		t.Errorf("Reason of a plain error = %s, want %s", got, ReasonInvalidObject)
	}
}
