package kubeproxyconfig

import (
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestDeployManifestConfig checks that the KubeProxyConfiguration that
// manifests/deploy/configmap.yaml ships decodes strictly, validates, and needs no
// warning.
func TestDeployManifestConfig(t *testing.T) {
	data, err := os.ReadFile("../../manifests/deploy/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm v1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		t.Fatal(err)
	}
	r, err := complete(t, "--config="+writeFile(t, cm.Data["config.conf"]))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) > 0 || len(r.Notices) > 0 {
		t.Errorf("warnings %q, notices %q, want none", r.Warnings, r.Notices)
	}
	if r.Controller.Mode != "iptables" || len(r.Controller.ClusterCIDRs) != 1 {
		t.Errorf("mode %q cluster CIDRs %v", r.Controller.Mode, r.Controller.ClusterCIDRs)
	}
}
