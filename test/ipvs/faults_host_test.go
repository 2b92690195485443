//go:build linux && !ipvsguest

package ipvs

// The host's half of the fault steps of TestDaemonInVM (the guest's half is
// faults_guest_test.go): the API changes, the apiserver outage and the watch proxy's
// 410 the guest asks for.

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/switchyard-io/switchyard/test/testbed"
)

// faultOutage is how long the apiserver is down in the outage step.
const faultOutage = 5 * time.Second

// faultActions returns the host's action for each fault step; proxy is the watch
// proxy between the guest's daemon and kube-apiserver.
func faultActions(t *testing.T, c *testbed.Cluster, proxy *testbed.WatchProxy) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		stepFaultEndpointsA:  func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-a") },
		stepFaultEndpointsAC: func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-a", "pod-c") },
		stepFaultEndpointsB:  func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-b") },
		stepFaultNodeDeleted: func(ctx context.Context) error {
			return c.Clientset.CoreV1().Nodes().Delete(ctx, daemonNode, metav1.DeleteOptions{})
		},
		stepFaultNodeCreated: func(ctx context.Context) error { return createVMNodeErr(ctx, c) },
		// The daemon's EndpointSlice watch goes silent, then web changes: the proxy
		// reads the apiserver's event and withholds it.
		stepFaultWatchCut: func(ctx context.Context) error {
			if err := waitFor(ctx, "the daemon's EndpointSlice watch at the proxy", func() bool { return proxy.Watches() > 0 }); err != nil {
				return err
			}
			proxy.Cut()
			if err := publishWebErr(ctx, c, "pod-a"); err != nil {
				return err
			}
			return waitFor(ctx, "the MODIFIED event withheld", func() bool { return proxy.Withheld(watch.Modified) > 0 })
		},
		// The watch ends with the apiserver's 410 Gone; the daemon must relist (a
		// streaming list, sendInitialEvents=true: dry-run --diff's plain LISTs through
		// the proxy do not count).
		stepFaultWatchExpired: func(ctx context.Context) error {
			proxy.Expire()
			expired := time.Now()
			var relist testbed.ListRequest
			err := waitFor(ctx, "the daemon's relist after the 410", func() bool {
				for _, l := range proxy.ListsSince(expired) {
					if l.Kind == "WATCH-LIST" {
						relist = l
						return true
					}
				}
				return false
			})
			if err != nil {
				return err
			}
			t.Logf("FIGURE ipvs: EndpointSlice watch cut (%d MODIFIED events withheld), then ended with 410 Gone: relist (%s, %s) %v after the 410 (host clock)",
				proxy.Withheld(watch.Modified), relist.Kind, relist.UserAgent, relist.At.Sub(expired).Round(time.Millisecond))
			return nil
		},
		// The node's address changes, as a re-IP would (the guest has added guestIP2 to
		// eth0), and web changes right after, while the daemon rebuilds.
		stepFaultNodeAddress: func(ctx context.Context) error {
			if err := setVMNodeIP(ctx, c, guestIP2); err != nil {
				return err
			}
			return publishWebErr(ctx, c, "pod-b")
		},
		stepFaultNodeAddressBack: func(ctx context.Context) error { return setVMNodeIP(ctx, c, guestIP) },
		stepFaultLockEndpointsAC: func(ctx context.Context) error { return publishWebErr(ctx, c, "pod-a", "pod-c") },
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

// waitFor polls done every 50 ms for up to a minute.
func waitFor(ctx context.Context, what string, done func() bool) error {
	deadline := time.Now().Add(time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within a minute", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// setVMNodeIP sets the guest's Node's InternalIP, as kubelet would after a re-IP.
func setVMNodeIP(ctx context.Context, c *testbed.Cluster, ip string) error {
	nodes := c.Clientset.CoreV1().Nodes()
	current, err := nodes.Get(ctx, daemonNode, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i, address := range current.Status.Addresses {
		if address.Type == v1.NodeInternalIP {
			current.Status.Addresses[i].Address = ip
		}
	}
	if _, err := nodes.UpdateStatus(ctx, current, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting Node %s's InternalIP to %s: %w", daemonNode, ip, err)
	}
	return nil
}
