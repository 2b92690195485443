// Package endpoints holds Switchyard's node-local model of the cluster's services: the
// service ports and endpoints that kube-proxy would program, converted from v1.Service and
// discovery/v1 EndpointSlice objects, a change tracker that turns informer events into
// immutable snapshots, and the pure functions that choose which endpoints a node uses.
//
// Nothing in this package touches the kernel or the API server. The proxiers read a
// Snapshot and render rules from it; the controller feeds the Tracker from informers.
package endpoints
