//go:build tools

// Package tools pins the binaries the testbed builds (see hack/build-tools.sh).
// The blank imports keep `go mod tidy` from dropping the modules they need.
package tools

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
)
