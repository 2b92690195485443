// Package kubeproxyconfig reads and writes kube-proxy's configuration, so that Switchyard
// starts from exactly what a kube-proxy DaemonSet gives it: a KubeProxyConfiguration
// v1alpha1 file (--config) or kube-proxy's command-line flags.
//
// It uses the real API types of k8s.io/kube-proxy/config/v1alpha1. A file is decoded
// strictly first and, when only unknown or duplicate fields stand in the way, leniently
// with a warning per field, as kube-proxy v1.37 does. Defaults, precedence between the
// file and the flags, and validation follow kube-proxy; the result is converted into a
// controller.Config, with a warning for every setting Switchyard accepts but cannot
// honour. Nothing here touches the kernel or the API server, so a bad configuration is
// refused before anything is changed.
package kubeproxyconfig
