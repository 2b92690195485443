//go:build linux && !ipvsguest

package ipvs

// The host's half of the fault steps of TestDaemonInVM (the guest's half is
// faults_guest_test.go): the API changes and the apiserver outage the guest asks for.

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// faultOutage is how long the apiserver is down in the outage step.
const faultOutage = 5 * time.Second

// faultActions returns the host's action for each fault step.
func faultActions(t *testing.T, c *testbed.Cluster) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		stepFaultEndpointsA:  func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-a") },
		stepFaultEndpointsAC: func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-a", "pod-c") },
		stepFaultEndpointsB:  func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-b") },
		stepFaultNodeDeleted: func(ctx context.Context) error {
			return c.Clientset.CoreV1().Nodes().Delete(ctx, daemonNode, metav1.DeleteOptions{})
		},
		stepFaultNodeCreated: func(ctx context.Context) error { return createVMNodeErr(ctx, c) },
		// The guest sees the outage only as broken watches; the change right after it
		// must arrive once the informers have reconnected.
		stepFaultAPIServerOutage: func(ctx context.Context) error {
			c.StopAPIServer(t)
			select {
			case <-ctx.Done():
			case <-time.After(faultOutage):
			}
			c.StartAPIServer(t)
			if err := publishWebErr(ctx, c, "pod-a", "pod-b"); err != nil {
				return fmt.Errorf("after the outage: %w", err)
			}
			return nil
		},
	}
}
