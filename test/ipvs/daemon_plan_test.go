//go:build linux

package ipvs

// The plan TestDaemonInVM (host, daemon_test.go) and TestGuestDaemon (guest,
// daemon_guest_test.go) share: where the host puts the daemon's files in the guest, the
// cluster objects it creates, and the steps the guest announces on the console for the
// host to act on through the API.

const (
	// daemonNode is the Node object the guest proxies for (--hostname-override).
	daemonNode = "vm-node"
	// guestIP is the guest's eth0 address on QEMU's user-mode network: the Node's
	// InternalIP, the config's bindAddress, and where /healthz listens.
	guestIP = "10.0.2.15"
	// guestIP2 is the second address the node-address fault adds to eth0 and makes
	// the Node's InternalIP for a while.
	guestIP2 = "10.0.2.16"
	// daemonHealthz is healthzBindAddress in the config file (kube-proxy's port).
	daemonHealthz = guestIP + ":10256"
	// guestBinDir holds the static switchyard binary and the kube-proxy link to it.
	guestBinDir = "/opt/switchyard/bin"
	// guestConfig is the KubeProxyConfiguration written by the pinned kube-proxy's
	// --write-config-to; guestKubeconfig is the restricted identity's kubeconfig with
	// the server at 10.0.2.2, the control plane namespace's loopback seen from the guest.
	guestConfig     = "/etc/switchyard/config.conf"
	guestKubeconfig = "/etc/switchyard/kubeconfig"
	// daemonLog is where the guest test writes the daemon's stdout and stderr.
	daemonLog = "/tmp/switchyard.log"

	// webClusterIP is the cluster IP the host asks for Service default/web (TCP 80 to
	// the pods' 8080); the pods are those of topology() in guest_test.go.
	webClusterIP = "10.96.100.10"
	webPort      = 80
	// webNodePort is web's node port: a virtual server on each address of the Node
	// object (nodePortAddresses is unset), which the node-address fault moves.
	webNodePort = 30080
	// kubernetesClusterIP is the default/kubernetes Service (the first address of the
	// apiserver's service range); its endpoint is the apiserver's advertise address.
	kubernetesClusterIP = "10.96.0.1"
	kubernetesEndpoint  = "10.250.0.1:6443"

	// stepMarker starts a console line by which the guest asks the host to make the
	// named API change (the guest has no other channel to the host test); the guest
	// then waits, bounded, for the daemon to program the result.
	stepMarker = "SWITCHYARD-DAEMON-STEP "
	// The steps, in order.
	stepEndpointsBC   = "endpoints-b-c"   // web's EndpointSlice: pod-b and pod-c (pod-a leaves)
	stepEndpointsNone = "endpoints-none"  // web's EndpointSlice: no endpoints
	stepDeleteService = "service-deleted" // web and its EndpointSlice deleted

	// The fault steps (faults_guest_test.go), before the ones above; they end with
	// web on pod-a and pod-b, as they began.
	stepFaultEndpointsA      = "fault-endpoints-a"      // web's EndpointSlice: pod-a
	stepFaultEndpointsAC     = "fault-endpoints-a-c"    // web's EndpointSlice: pod-a and pod-c
	stepFaultEndpointsB      = "fault-endpoints-b"      // web's EndpointSlice: pod-b
	stepFaultNodeDeleted     = "fault-node-deleted"     // the Node object deleted
	stepFaultNodeCreated     = "fault-node-created"     // the Node object created again, with its status
	stepFaultAPIServerOutage = "fault-apiserver-outage" // kube-apiserver stopped for 5 s, started, then web: pod-a and pod-b
	stepFaultWatchCut        = "fault-watch-cut"        // the proxy withholds the EndpointSlice watch's events; web: pod-a
	stepFaultWatchExpired    = "fault-watch-expired"    // the proxy ends that watch with 410 Gone
	stepFaultNodeAddress     = "fault-node-address"     // the Node's InternalIP: guestIP2, then web: pod-b
	stepFaultNodeAddressBack = "fault-node-address-old" // the Node's InternalIP: guestIP again
)

// stepFaultLockEndpointsAC is the xtables lock case's change (faults_lock_guest_test.go),
// made while the lock is held: web's EndpointSlice: pod-a and pod-c.
const stepFaultLockEndpointsAC = "fault-lock-endpoints-a-c"

// daemonSteps are the steps in the order the guest announces them.
var daemonSteps = []string{
	stepFaultEndpointsA, stepFaultEndpointsAC, stepFaultEndpointsB, stepFaultNodeDeleted, stepFaultNodeCreated,
	stepFaultWatchCut, stepFaultWatchExpired, stepFaultNodeAddress, stepFaultNodeAddressBack, stepFaultLockEndpointsAC,
	stepFaultAPIServerOutage,
	stepEndpointsBC, stepEndpointsNone, stepDeleteService,
}
