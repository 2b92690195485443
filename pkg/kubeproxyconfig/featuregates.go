package kubeproxyconfig

import (
	"fmt"

	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// NewFeatureGate returns a feature gate that knows exactly the gates the pinned
// kube-proxy knows (zz_generated_featuregates.go), so that --feature-gates and
// featureGates accept what kube-proxy accepts and refuse, with kube-proxy's
// "unrecognized feature gate" error, what it refuses. Switchyard's behaviour depends on
// none of them except the logging gates, which configure logging as in kube-proxy.
func NewFeatureGate() (featuregate.MutableVersionedFeatureGate, error) {
	gate := featuregate.NewFeatureGate()
	if err := logsapi.AddFeatureGates(gate); err != nil {
		return nil, fmt.Errorf("feature gates: %w", err)
	}
	known := gate.GetAll()
	rest := map[featuregate.Feature]featuregate.FeatureSpec{}
	for name, spec := range kubeProxyFeatureGates {
		if _, ok := known[name]; !ok {
			rest[name] = spec
		}
	}
	if err := gate.Add(rest); err != nil {
		return nil, fmt.Errorf("feature gates: %w", err)
	}
	return gate, nil
}
