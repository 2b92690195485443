package endpoints

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

func TestAwaitsEndpoints(t *testing.T) {
	web := makeService("shop", "web")
	webSlice := makeSlice("shop", "web", "web-1", []discovery.Endpoint{makeEndpoint("10.244.1.5", "node-a")})
	emptySlice := makeSlice("shop", "web", "web-1", nil)
	headless := makeService("shop", "web", func(s *v1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ClusterIPNone, []string{v1.ClusterIPNone}
	})
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, tr *Tracker)
		want  bool
	}{
		{"unknown Service", func(*testing.T, *Tracker) {}, false},
		// mutation-checked: dropping the portsOf check makes "synced Service..." and
		// "Service whose slice was deleted" true.
		{"new Service without a slice", func(t *testing.T, tr *Tracker) { mustUpdateService(t, tr, web) }, true},
		// mutation-checked: dropping the slices check makes these two true.
		{"new Service whose slice came first", func(t *testing.T, tr *Tracker) {
			mustUpdateSlice(t, tr, webSlice)
			mustUpdateService(t, tr, web)
		}, false},
		{"new Service with an empty slice (selector matches no pod)", func(t *testing.T, tr *Tracker) {
			mustUpdateService(t, tr, web)
			mustUpdateSlice(t, tr, emptySlice)
		}, false},
		{"synced Service still without a slice, changed", func(t *testing.T, tr *Tracker) {
			mustUpdateService(t, tr, web)
			tr.Snapshot()
			mustUpdateService(t, tr, makeService("shop", "web", func(s *v1.Service) { s.Spec.Ports[0].Port = 81 }))
		}, false},
		{"Service whose slice was deleted", func(t *testing.T, tr *Tracker) {
			mustUpdateService(t, tr, web)
			mustUpdateSlice(t, tr, webSlice)
			tr.Snapshot()
			tr.OnEndpointSliceDelete(webSlice)
		}, false},
		{"deleted Service", func(t *testing.T, tr *Tracker) {
			mustUpdateService(t, tr, web)
			tr.OnServiceDelete(web)
		}, false},
		// A headless Service has no ports to program: nothing to wait for.
		{"headless Service", func(t *testing.T, tr *Tracker) { _ = tr.OnServiceUpdate(headless) }, false},
		{"Service re-created after a synced delete, no slice", func(t *testing.T, tr *Tracker) {
			mustUpdateService(t, tr, web)
			tr.Snapshot()
			tr.OnServiceDelete(web)
			tr.Snapshot()
			mustUpdateService(t, tr, web)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(thisNode)
			tc.setup(t, tr)
			if got := tr.AwaitsEndpoints(nn("shop", "web")); got != tc.want {
				t.Errorf("AwaitsEndpoints = %t, want %t", got, tc.want)
			}
		})
	}
}
