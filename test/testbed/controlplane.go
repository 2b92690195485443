package testbed

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The address plan; doc.go and docs/testbed.md describe it.
const (
	// ClusterCIDR is the pod network of the cluster, both families, in the
	// form kube-proxy's --cluster-cidr takes. The IPv6 half is a /32
	// because node i's pods are fd00:244:i::/64: i is the third group, so a
	// /48 would hold node 0's pods only, and proxies would masquerade
	// pod-to-service traffic as if it came from outside the cluster.
	ClusterCIDR = "10.244.0.0/16,fd00:244::/32"
	// ServiceCIDR is the apiserver's --service-cluster-ip-range. /112 is
	// well inside the apiserver's limit for IPv6 (/108 or longer).
	ServiceCIDR = "10.96.0.0/16,fd00:96::/112"
	// ExternalCIDR and ExternalCIDR6 are set aside for Services'
	// externalIPs and load-balancer IPs; see RouteFromOutside.
	ExternalCIDR  = "10.252.0.0/24"
	ExternalCIDR6 = "fd00:252::/64"

	// APIServerIP is the control plane's address on the cluster segment.
	APIServerIP = "10.250.0.1"
	// APIServerPort is kube-apiserver's secure port.
	APIServerPort = 6443
	// OutsideIP and OutsideIPv6 are the outside client's addresses.
	OutsideIP   = "10.251.0.100"
	OutsideIPv6 = "fd00:251::100"

	// RestrictedUser is the identity of the restricted kubeconfig. It is a
	// service account's user name, so RBAC bindings to ServiceAccount
	// kube-system/switchyard (manifests/) apply to it, while it has none of
	// system:masters' rights.
	RestrictedUser = "system:serviceaccount:kube-system:switchyard"
	// KubeProxyUser is the identity the reference kube-proxy uses; the
	// apiserver's bootstrap policy binds it to ClusterRole system:node-proxier.
	KubeProxyUser = "system:kube-proxy"

	// bridgeName is the L2 switch of a segment, in the control plane and the
	// outside namespaces, and the pod bridge in a node namespace.
	bridgeName = "sy-br"
	// bridgeOptions make a bridge a plain switch from its first moment: no
	// forwarding delay, and no multicast snooping, which could hold back
	// IPv6 neighbour solicitations to ports that have not sent an MLD
	// report yet.
	bridgeOptions = " forward_delay 0 mcast_snooping 0"
)

// Cluster is a running etcd and kube-apiserver in their own network
// namespace, plus the nodes, pods and outside client added to it. All of it
// is torn down by t.Cleanup.
type Cluster struct {
	// ID is the short random id in every name this cluster creates.
	ID string
	// Netns is the control plane's network namespace.
	Netns string
	// Dir is the temporary directory with the kubeconfigs, certificates,
	// etcd data and process logs.
	Dir string
	// APIServerURL is where kube-apiserver listens, reachable from every
	// node and pod namespace (not from the host namespace).
	APIServerURL string
	// AdminKubeconfig is a kubeconfig file for a system:masters user.
	AdminKubeconfig string
	// RestrictedKubeconfig is a kubeconfig file for RestrictedUser, which
	// has only the rights RBAC objects grant it.
	RestrictedKubeconfig string
	// KubeProxyKubeconfig is a kubeconfig file for KubeProxyUser.
	KubeProxyKubeconfig string
	// RestrictedUser is the user name of RestrictedKubeconfig.
	RestrictedUser string
	// Clientset is an admin client. Its connections are made inside the
	// control plane namespace, so it works from the test process.
	Clientset *kubernetes.Clientset
	// Outside is the client namespace outside the cluster.
	Outside *Outside
	// IPTablesBackend is "nft" or "legacy"; see WithIPTablesBackend.
	IPTablesBackend string

	t         testing.TB
	tools     map[string]string
	echo      string
	lock      *os.File
	addNodeMu sync.Mutex
	mu        sync.Mutex // guards the fields below and Node.pods
	nodes     []*Node
	processes []*Process
	netns     []string
}

// Option changes how StartControlPlane sets a cluster up.
type Option func(*Cluster)

// WithIPTablesBackend selects which iptables the node namespaces see as
// `iptables`: "nft" (xtables-nft-multi, Debian's default) or "legacy"
// (xtables-legacy-multi). The default is $SWITCHYARD_IPTABLES_BACKEND, else
// "nft". Node.Env puts a directory of symlinks first in PATH, which is how
// kube-proxy and Switchyard alike pick the backend.
func WithIPTablesBackend(backend string) Option {
	return func(c *Cluster) { c.IPTablesBackend = backend }
}

// StartControlPlane cleans up leftovers of killed runs, then starts etcd and
// kube-apiserver (RBAC, token authentication, dual-stack service CIDRs) in a
// new network namespace and waits, bounded, until /readyz answers ok and the
// default/kubernetes Service and its EndpointSlice exist. It also creates the
// outside client namespace.
func StartControlPlane(t testing.TB, options ...Option) *Cluster {
	t.Helper()
	Require(t)
	if removed, err := Cleanup(); err != nil {
		t.Fatalf("testbed: removing leftovers of earlier runs: %v", err)
	} else if len(removed) > 0 {
		t.Logf("testbed: removed leftovers of earlier runs: %s", strings.Join(removed, ", "))
	}
	cluster, err := startControlPlane(t, options)
	if err != nil {
		t.Fatalf("testbed: starting control plane: %v", err)
	}
	return cluster
}

func startControlPlane(t testing.TB, options []Option) (*Cluster, error) {
	tools, err := toolPaths()
	if err != nil {
		return nil, err
	}
	echo, err := EchoBinary()
	if err != nil {
		return nil, err
	}
	idBytes := make([]byte, 3)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(idBytes)
	cluster := &Cluster{
		ID:              id,
		Netns:           Prefix + id + "-cp",
		APIServerURL:    fmt.Sprintf("https://%s:%d", APIServerIP, APIServerPort),
		RestrictedUser:  RestrictedUser,
		IPTablesBackend: os.Getenv("SWITCHYARD_IPTABLES_BACKEND"),
		t:               t,
		tools:           tools,
		echo:            echo,
	}
	for _, option := range options {
		option(cluster)
	}
	if cluster.IPTablesBackend == "" {
		cluster.IPTablesBackend = "nft"
	}
	if cluster.IPTablesBackend != "nft" && cluster.IPTablesBackend != "legacy" {
		return nil, fmt.Errorf("iptables backend %q: want nft or legacy", cluster.IPTablesBackend)
	}

	// The lock comes first: from now on a concurrent Cleanup leaves this
	// cluster's namespaces alone. Teardown is registered before anything
	// else is created, so a failure half-way still removes what exists.
	if cluster.lock, err = clusterLock(id); err != nil {
		return nil, err
	}
	t.Cleanup(cluster.teardown)
	if cluster.Dir, err = os.MkdirTemp("", Prefix+id+"-"); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cluster.createSegments(ctx); err != nil {
		return nil, err
	}
	if err := cluster.writeCredentials(); err != nil {
		return nil, err
	}
	if err := cluster.writeAuditPolicy(); err != nil {
		return nil, err
	}
	if err := cluster.writeIPTablesShims(); err != nil {
		return nil, err
	}
	if err := cluster.startEtcdAndAPIServer(ctx); err != nil {
		return nil, err
	}
	return cluster, nil
}

// createSegments makes the control plane namespace with the cluster
// segment's bridge, and the outside namespace with the outside segment's
// bridge. Nodes plug a veth into each (AddNode).
func (c *Cluster) createSegments(ctx context.Context) error {
	if err := c.addNetns(ctx, c.Netns); err != nil {
		return err
	}
	if err := ipBatch(ctx, c.Netns,
		"link add "+bridgeName+" type bridge"+bridgeOptions,
		"addr add "+APIServerIP+"/24 dev "+bridgeName,
		"addr add fd00:250::1/64 dev "+bridgeName+" nodad",
		"link set "+bridgeName+" up",
	); err != nil {
		return err
	}
	c.Outside = &Outside{Netns: Prefix + c.ID + "-out", IP: OutsideIP, IPv6: OutsideIPv6, cluster: c}
	if err := c.addNetns(ctx, c.Outside.Netns); err != nil {
		return err
	}
	return ipBatch(ctx, c.Outside.Netns,
		"link add "+bridgeName+" type bridge"+bridgeOptions,
		"addr add "+OutsideIP+"/24 dev "+bridgeName,
		"addr add "+OutsideIPv6+"/64 dev "+bridgeName+" nodad",
		"link set "+bridgeName+" up",
	)
}

// addNetns creates a namespace and records it for teardown.
func (c *Cluster) addNetns(ctx context.Context, name string) error {
	c.mu.Lock()
	c.netns = append(c.netns, name)
	c.mu.Unlock()
	return createNetns(ctx, name)
}

// startProcess starts a process and records it for teardown.
func (c *Cluster) startProcess(name, netns string, env []string, argv ...string) (*Process, error) {
	process, err := startProcess(c.Dir, name, netns, env, argv...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.processes = append(c.processes, process)
	c.mu.Unlock()
	return process, nil
}

func randomToken() (string, error) {
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return "", err
	}
	return hex.EncodeToString(token), nil
}

// writeCredentials writes the service-account key, the static token file
// and one kubeconfig per identity.
func (c *Cluster) writeCredentials() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating service account key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(c.Dir, "sa.key"), keyPEM, 0o600); err != nil {
		return err
	}

	identities := []struct {
		user, groups string
		path         *string
		file         string
	}{
		{"sy-admin", "system:masters", &c.AdminKubeconfig, "admin.kubeconfig"},
		{RestrictedUser, "system:serviceaccounts,system:serviceaccounts:kube-system", &c.RestrictedKubeconfig, "restricted.kubeconfig"},
		{KubeProxyUser, "", &c.KubeProxyKubeconfig, "kube-proxy.kubeconfig"},
	}
	var tokens strings.Builder
	for i, identity := range identities {
		token, err := randomToken()
		if err != nil {
			return err
		}
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&tokens, "%s,%s,uid-%d,%q\n", token, identity.user, i, identity.groups)
		*identity.path = filepath.Join(c.Dir, identity.file)
		if err := writeKubeconfig(*identity.path, c.APIServerURL, identity.user, token); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(c.Dir, "tokens.csv"), []byte(tokens.String()), 0o600)
}

func writeKubeconfig(path, server, user, token string) error {
	config := clientcmdapi.NewConfig()
	// The serving certificate is self-signed by the apiserver at start;
	// these clusters live for one test, so skipping verification is fine.
	config.Clusters["testbed"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	config.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	config.Contexts["testbed"] = &clientcmdapi.Context{Cluster: "testbed", AuthInfo: user}
	config.CurrentContext = "testbed"
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

func (c *Cluster) startEtcdAndAPIServer(ctx context.Context) error {
	// etcd listens on the control plane namespace's loopback only; nothing
	// but the apiserver needs it. No fsync: the data lives for one test.
	if _, err := c.startProcess("etcd", c.Netns, nil, c.tools["etcd"],
		"--name", "sy",
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379",
		"--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380",
		"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "sy=http://127.0.0.1:2380",
		"--unsafe-no-fsync",
		"--log-level", "warn",
	); err != nil {
		return err
	}
	saKey := filepath.Join(c.Dir, "sa.key")
	apiserver, err := c.startProcess("kube-apiserver", c.Netns, nil, c.tools["kube-apiserver"],
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", "0.0.0.0",
		"--advertise-address", APIServerIP,
		"--secure-port", fmt.Sprint(APIServerPort),
		"--cert-dir", filepath.Join(c.Dir, "certs"),
		"--service-cluster-ip-range", ServiceCIDR,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey,
		"--token-auth-file", filepath.Join(c.Dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--profiling=false",
		// As kubeadm's kube-apiserver: privileged containers are allowed (kube-proxy's
		// DaemonSet and Switchyard's --init-only container are privileged), so that
		// the e2e suite's server-side apply of manifests/deploy judges them as a
		// real cluster would.
		"--allow-privileged=true",
		"--audit-policy-file", c.auditPolicyPath(),
		"--audit-log-path", c.auditLogPath(),
	)
	if err != nil {
		return err
	}

	if err := c.waitAPIServerReady(ctx, apiserver, "kube-apiserver /readyz"); err != nil {
		return err
	}
	config, err := c.RESTConfig(c.AdminKubeconfig)
	if err != nil {
		return err
	}
	if c.Clientset, err = kubernetes.NewForConfig(config); err != nil {
		return fmt.Errorf("admin clientset: %w", err)
	}
	// The apiserver creates the default/kubernetes Service and its
	// EndpointSlice shortly after it is ready. Wait for them, so that a
	// proxy started by a test sees a settled set of objects rather than one
	// Service more arriving mid-test.
	return poll(ctx, 30*time.Second, "the default/kubernetes Service and EndpointSlice", func(ctx context.Context) error {
		if _, err := c.Clientset.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := c.Clientset.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		return err
	})
}

// RESTConfig loads a kubeconfig file of this cluster (AdminKubeconfig,
// RestrictedKubeconfig, ...) into a client-go config whose connections are
// made inside the control plane namespace, so it works from the test
// process, which stays in the host namespace.
func (c *Cluster) RESTConfig(kubeconfig string) (*rest.Config, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	config.Dial = netnsDialer(c.Netns)
	config.QPS, config.Burst = 500, 1000
	return config, nil
}

// ClientsetFor returns a clientset for one of this cluster's kubeconfig
// files, for example RestrictedKubeconfig.
func (c *Cluster) ClientsetFor(kubeconfig string) (*kubernetes.Clientset, error) {
	config, err := c.RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(config)
}

// Kubectl runs the pinned kubectl as the admin user inside the control plane
// namespace (where the apiserver is reachable) and returns its combined
// output; the error includes it.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{c.tools["kubectl"], "--kubeconfig", c.AdminKubeconfig}, args...)
	output, err := execInNetns(ctx, c.Netns, nil, argv...)
	return string(output), err
}

// Nodes returns the nodes added so far, in order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

// Tool returns the path of a pinned binary: "kube-apiserver", "etcd",
// "kubectl" or "kube-proxy".
func (c *Cluster) Tool(name string) string { return c.tools[name] }

// teardown stops every process (newest first), kills whatever else runs in
// the cluster's namespaces, deletes them, removes the temporary directory
// and releases the lock. It keeps going after errors and reports them all.
func (c *Cluster) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.mu.Lock()
	processes, namespaces := slices.Clone(c.processes), slices.Clone(c.netns)
	c.mu.Unlock()

	var errs []error
	for _, process := range slices.Backward(processes) {
		if err := process.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, netns := range slices.Backward(namespaces) {
		if err := deleteNetns(ctx, netns); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Dir != "" {
		if c.t.Failed() {
			// Keep the logs of a failed test readable in the output.
			for _, process := range processes {
				if tail := process.Tail(15); tail != "ready" { // an echo server with nothing to say
					c.t.Logf("testbed: last lines of %s (%s):\n%s", process.Name, process.LogPath, tail)
				}
			}
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if c.lock != nil {
		_ = os.Remove(c.lock.Name())
		c.lock.Close()
	}
	if err := errors.Join(errs...); err != nil {
		c.t.Errorf("testbed: teardown of cluster %s: %v", c.ID, err)
	}
}

// waitAPIServerReady polls the apiserver's /readyz as the admin until it answers 200,
// failing at once, with its last log lines, if the process exits.
func (c *Cluster) waitAPIServerReady(ctx context.Context, apiserver *Process, what string) error {
	config, err := c.RESTConfig(c.AdminKubeconfig)
	if err != nil {
		return err
	}
	transport, err := rest.TransportFor(config)
	if err != nil {
		return fmt.Errorf("admin transport: %w", err)
	}
	httpClient := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	return poll(ctx, 90*time.Second, what, func(ctx context.Context) error {
		if exited, err := apiserver.Exited(); exited {
			return fmt.Errorf("%w: kube-apiserver exited (%v); last log lines:\n%s", errStopPolling, err, apiserver.Tail(20))
		}
		request, err := http.NewRequestWithContext(ctx, http.MethodGet, c.APIServerURL+"/readyz", nil)
		if err != nil {
			return err
		}
		response, err := httpClient.Do(request)
		if err != nil {
			return err
		}
		defer response.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(response.Body, 4096))
		if response.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", response.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	})
}
