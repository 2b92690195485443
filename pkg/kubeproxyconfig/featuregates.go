package kubeproxyconfig

import (
	"fmt"

	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// NewFeatureGate returns a feature gate that knows exactly the gates the pinned
// kube-proxy knows (zz_generated_featuregates.go: alpha, beta, GA and deprecated, with
// their versioned specs and dependencies), so that --feature-gates and featureGates
// accept what kube-proxy accepts (a GA or deprecated gate with a warning) and refuse
// with kube-proxy's error what it refuses: an unknown gate, a GA gate set against its
// lock, a gate enabled without the gates it depends on. Switchyard's behaviour depends on
// none of them except the logging gates, which configure logging as in kube-proxy, and
// FeatureNFTablesLocalhostNodePorts.
func NewFeatureGate() (featuregate.MutableVersionedFeatureGate, error) {
	gate := featuregate.NewFeatureGate()
	if err := logsapi.AddFeatureGates(gate); err != nil {
		return nil, fmt.Errorf("feature gates: %w", err)
	}
	known := gate.GetAllVersioned()
	rest := map[featuregate.Feature]featuregate.VersionedSpecs{}
	for name, spec := range kubeProxyFeatureGates {
		if _, ok := known[name]; !ok {
			rest[name] = spec
		}
	}
	if err := gate.AddVersioned(rest); err != nil {
		return nil, fmt.Errorf("feature gates: %w", err)
	}
	if err := gate.AddDependencies(kubeProxyFeatureGateDependencies); err != nil {
		return nil, fmt.Errorf("feature gates: %w", err)
	}
	return gate, nil
}

// FeatureNFTablesLocalhostNodePorts is kube-proxy's alpha gate (off by default) under
// which its nftables mode rejects and counts node-port traffic to loopback addresses,
// and proxies TCP node ports there when --nodeport-addresses names loopback; Switchyard
// writes the same table but has no proxy (docs/nftables.md).
const FeatureNFTablesLocalhostNodePorts featuregate.Feature = "KubeProxyNFTablesLocalhostNodePorts"
