// Package iptables is Switchyard's iptables mode: it renders the desired state as
// iptables-restore payloads with kube-proxy's chain layout, and applies them to the
// kernel through pkg/xtables, the library both modes share.
//
// Rendering is pure: Render and RenderPartial turn an endpoints.Snapshot and the node's
// facts (Config) into a Plan holding the exact bytes to feed to iptables-restore
// --noflush. Applying is a thin layer behind xtables.Interface. Chain names, rule order, comments
// and the masquerade mark match kube-proxy v1.37's iptables mode, so that runbooks built
// on `iptables-save | grep KUBE-SVC` keep working and Switchyard can take over a node's
// existing chains in place.
package iptables
