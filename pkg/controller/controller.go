package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/conntrack"
	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/health"
	"github.com/switchyard-io/switchyard/pkg/metrics"
	"github.com/switchyard-io/switchyard/pkg/nfacct"
	"github.com/switchyard-io/switchyard/pkg/node"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/runner"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// serviceSelector leaves out Services that belong to another proxy or are headless, as
// kube-proxy's informer does; a Service gaining such a label is seen as deleted.
const serviceSelector = "!" + endpoints.LabelServiceProxyName + ",!" + endpoints.LabelHeadless

// Controller is the running daemon.
type Controller struct {
	cfg      Config
	nodeName string
	client   kubernetes.Interface
	tracker  *endpoints.Tracker
	metrics  *metrics.Metrics
	health   *health.ProxierHealth
	services *health.ServiceHealth
	runner   *runner.Runner
	// events reports objects that cannot be fully programmed, on the objects
	// themselves, so their owners see it with kubectl describe.
	events      record.EventRecorder
	broadcaster record.EventBroadcaster
	// problems deduplicates those reports across resyncs.
	problems *problemLog
	// newIPTables opens the kernel interface of one family; tests replace it.
	newIPTables func(ctx context.Context, family v1.IPFamily) (xtables.Interface, error)
	// conntrack deletes stale UDP flows; tests replace it.
	conntrack conntrack.Interface
	// kernel is where initNode writes; nodeState what it found (see nodeinit.go).
	kernel    nodeKernel
	nodeState NodeState
	// probeNFAcct opens the kernel's nfacct subsystem; New sets it, so a Controller
	// from newController (tests) never touches nfacct. nfacct is what it found, nil
	// where the kernel has none or it was not probed (see nfacct.go).
	probeNFAcct func() (nfacct.Interface, error)
	nfacct      nfacct.Interface
	// now is the Providers' clock (periodic full syncs); tests replace it.
	now func() time.Time
	// onSynced, when set, is told each Provider's sync result; scenario tests read it.
	onSynced func(family v1.IPFamily, res proxy.Result, err error)
	// lastSynced is the last snapshot every Provider applied and whose stale
	// conntrack entries were cleaned: the base of the next cleanup. Only the
	// cleaner's worker uses it.
	lastSynced *endpoints.Snapshot
	// cleaner runs the conntrack cleanup off the sync loop.
	cleaner conntrackCleaner
	// noLocal keeps each family's no-local-endpoints counts up to date; only the sync
	// goroutine uses it.
	noLocal map[v1.IPFamily]*noLocalCounts

	// ipvs holds IPVS mode's hooks for tests (see ipvs.go).
	ipvs ipvsMode
	// nftables holds nftables mode's hooks for tests (see nftables.go).
	nftables nftablesMode
	// leftovers is where Run removes the other modes' rules at start; nil (tests
	// built with newController) skips it (see leftovers.go).
	leftovers *leftoverKernel

	// syncMu is held for a whole sync and while the state dump collects what it
	// shows, so that a dump never shows half of a sync (see state.go). syncRecords
	// holds each family's last syncs, for the dump.
	syncMu      sync.Mutex
	syncRecords map[v1.IPFamily]*familyRecord

	mu sync.Mutex
	// facts are the node's facts the providers were built for.
	facts node.Facts
	// providers program the kernel, one per IP family, in the configured mode; nil
	// until the node is known.
	providers []proxy.Provider
	// serviceCIDRs are the ranges of the ServiceCIDR objects (nftables mode only,
	// see nftables.go).
	serviceCIDRs []netip.Prefix
}

// New builds a Controller from cfg: it checks the configuration and connects to the
// API server, but starts nothing.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nodeName, err := cfg.nodeName()
	if err != nil {
		return nil, err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{ClusterInfo: clientcmdapi.Cluster{Server: cfg.Client.Master}}
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	restConfig.UserAgent = "switchyard"
	cfg.Client.apply(restConfig)
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	c := newController(cfg, nodeName, client)
	// Only the daemon probes nfacct: creating its counters changes the network
	// namespace, which tests built with newController must never do.
	c.probeNFAcct = probeNFAcct
	c.leftovers = realLeftoverKernel(cfg.IPTablesLockWait)
	return c, nil
}

// newController wires a Controller around a client; tests pass a fake one.
func newController(cfg Config, nodeName string, client kubernetes.Interface) *Controller {
	c := &Controller{
		cfg:      cfg,
		nodeName: nodeName,
		client:   client,
		tracker:  endpoints.NewTracker(nodeName),
		metrics:  metrics.New(),
		health:   health.NewProxierHealth(cfg.healthTimeout(), nil),
		noLocal:  map[v1.IPFamily]*noLocalCounts{},
		problems: newProblemLog(),
	}
	c.services = health.NewServiceHealth("", c.health)
	c.broadcaster = record.NewBroadcaster()
	c.events = c.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "switchyard", Host: nodeName})
	c.newIPTables = c.openIPTables
	c.conntrack = conntrack.Netlink{}
	c.kernel = realNodeKernel()
	c.now = time.Now
	c.runner = runner.New("sync", c.sync, cfg.MinSyncPeriod, cfg.SyncPeriod)
	return c
}

// Run runs the daemon until ctx is cancelled. It leaves the rules in place when it
// returns, so traffic keeps flowing across restarts and upgrades.
func (c *Controller) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("node", c.nodeName)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Starting switchyard", "mode", c.cfg.Mode)
	// As kube-proxy: before anything else, --init-only included.
	c.cleanupLeftovers(ctx)
	state, err := initNode(ctx, &c.cfg, c.kernel)
	if err != nil {
		return err
	}
	if c.cfg.InitOnly {
		logger.Info("System initialized and --init-only specified")
		return nil
	}
	c.nodeState = state
	defer c.waitConntrack() // a running cleanup is bounded, and stops early once ctx is done
	stopDumps := c.startStateDumps(ctx)
	defer stopDumps()
	c.setUpNFAcct(ctx)
	c.services.OnServeError(func(err error) {
		logger.Error(err, "Health-check server stopped; the load balancer will see this node as unhealthy")
	})
	defer c.services.Close()
	c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcaster.Shutdown()

	servers, err := c.startServers(ctx)
	if err != nil {
		return err
	}
	defer servers.shutdown()

	// Resync every --config-sync-period, as kube-proxy's informers do.
	resync := c.cfg.ConfigSyncPeriod
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, resync, informers.WithTransform(trimForCache))
	svcFactory := informers.NewSharedInformerFactoryWithOptions(c.client, resync, informers.WithTransform(trimForCache),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = serviceSelector }))
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(c.client, resync, informers.WithTransform(trimForCache),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", c.nodeName).String()
		}))

	serviceInformer := svcFactory.Core().V1().Services().Informer()
	sliceInformer := factory.Discovery().V1().EndpointSlices().Informer()
	nodeInformer := nodeFactory.Core().V1().Nodes().Informer()
	var handlersSynced []cache.InformerSynced
	for _, reg := range []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{serviceInformer, c.serviceHandler(ctx)},
		{sliceInformer, c.sliceHandler(ctx)},
		{nodeInformer, c.nodeHandler(ctx)},
	} {
		registration, err := reg.informer.AddEventHandler(reg.handler)
		if err != nil {
			return fmt.Errorf("registering event handler: %w", err)
		}
		handlersSynced = append(handlersSynced, registration.HasSynced)
	}
	if err := c.watchServiceCIDRs(ctx, factory); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	svcFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	defer factory.Shutdown()
	defer svcFactory.Shutdown()
	defer nodeFactory.Shutdown()

	// The first sync must see every Service and EndpointSlice, or it would delete the
	// rules of the ones not yet listed (kubernetes#126468). Wait on the handler
	// registrations, not the informers: an informer's cache can be complete while its
	// initial events are still being delivered to the tracker, and the first sync would
	// then miss them (at 10k services, 1,586 arrived late as one 17k-chain partial sync).
	logger.Info("Waiting for caches to sync")
	if !cache.WaitForCacheSync(ctx.Done(), handlersSynced...) {
		return fmt.Errorf("caches did not sync: %w", context.Cause(ctx))
	}
	facts, err := c.waitForNode(ctx, nodeInformer.GetStore())
	if err != nil {
		return err
	}
	if err := c.buildProviders(ctx, facts); err != nil {
		return err
	}

	var wg sync.WaitGroup
	wg.Go(func() { c.watchCanary(ctx) })
	wg.Go(func() { c.watchTerminating(ctx) })
	wg.Go(func() { c.watchPeriodic(ctx) })
	c.runner.Request()
	err = c.runner.Run(ctx)
	wg.Wait()
	logger.Info("Stopped; rules are left in place")
	return err
}

// waitForNode waits until this node's Node object exists and has addresses, as
// kube-proxy does: without them, node ports and the local-traffic rules cannot be
// rendered.
func (c *Controller) waitForNode(ctx context.Context, store cache.Store) (node.Facts, error) {
	logger := klog.FromContext(ctx)
	var facts node.Facts
	var lastErr error
	if c.cfg.NodeWaitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.NodeWaitTimeout)
		defer cancel()
	}
	start := time.Now()
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) {
		obj, exists, err := store.GetByKey(c.nodeName)
		switch {
		case err != nil:
			lastErr = err
		case !exists:
			lastErr = fmt.Errorf("node %q does not exist", c.nodeName)
		default:
			facts, lastErr = node.FromNode(obj.(*v1.Node))
		}
		if lastErr != nil && time.Since(start) > 10*time.Second {
			logger.Info("Waiting for the Node", "reason", lastErr.Error())
			start = time.Now()
		}
		return lastErr == nil, nil
	})
	if err != nil {
		return facts, fmt.Errorf("waiting for node %q with addresses: %w (last seen: %v)", c.nodeName, err, lastErr)
	}
	logger.Info("Node found", "ips", facts.IPs, "zone", facts.Zone)
	return facts, nil
}

// dropManagedFields trims objects before they enter the informer caches: managed
// fields are most of a Service's size and nothing here reads them.
func dropManagedFields(obj any) (any, error) {
	if accessor, ok := obj.(metav1.ObjectMetaAccessor); ok {
		accessor.GetObjectMeta().SetManagedFields(nil)
	}
	return obj, nil
}

// errNoProxiers is returned by a sync that runs before the node is known.
var errNoProxiers = errors.New("no proxier yet: the node's addresses are not known")
