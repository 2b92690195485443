package controller

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/node"
)

// Informer callbacks only record the change and request a sync; they never touch the
// kernel, so a burst of events costs one sync.

func (c *Controller) serviceHandler(ctx context.Context) cache.ResourceEventHandler {
	return trackerHandler(ctx, c, "Service", false, c.tracker.OnServiceUpdate, c.tracker.OnServiceDelete)
}

func (c *Controller) sliceHandler(ctx context.Context) cache.ResourceEventHandler {
	return trackerHandler(ctx, c, "EndpointSlice", true, c.tracker.OnEndpointSliceUpdate, c.tracker.OnEndpointSliceDelete)
}

// trackerHandler feeds one kind of object to the tracker. A partly invalid object never
// stops the others: its usable parts are programmed, and the rest is logged, counted
// and reported with an Event on the object, where its owner sees it — once per
// problem, not once per resync (see problemLog).
func trackerHandler[T interface {
	*v1.Service | *discovery.EndpointSlice
	runtime.Object
	metav1.Object
}](ctx context.Context, c *Controller, kind string, isEndpoints bool, update func(T) error, remove func(T)) cache.ResourceEventHandler {
	logger := klog.FromContext(ctx)
	onUpdate := func(obj any) {
		o, ok := obj.(T)
		if !ok {
			return
		}
		logger.V(4).Info(kind+" event", "object", klog.KObj(o), "resourceVersion", o.GetResourceVersion())
		err := update(o)
		problem := ""
		if err != nil {
			problem = err.Error()
		}
		key := problemKey{kind: kind, name: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}
		if c.problems.observe(key, problem) {
			reason := endpoints.Reason(err)
			logger.Error(err, kind+" partly invalid", "object", klog.KObj(o), "reason", reason)
			c.metrics.InvalidObjects.WithLabelValues(kind, reason).Inc()
			c.events.Eventf(o, v1.EventTypeWarning, reason, "switchyard cannot program all of this %s: %v", kind, err)
		} else if err != nil {
			logger.V(4).Info(kind+" still partly invalid (already reported)", "object", klog.KObj(o), "err", problem)
		}
		window := c.syncWindow(isEndpoints, key.name)
		if window > 0 {
			logger.V(4).Info("New Service without an EndpointSlice yet; its sync waits for the slice", "service", klog.KObj(o), "atMost", window)
		}
		c.changed(isEndpoints, window)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    onUpdate,
		UpdateFunc: func(_, obj any) { onUpdate(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if o, ok := obj.(T); ok {
				logger.V(4).Info(kind+" deleted", "object", klog.KObj(o))
				c.problems.forget(problemKey{kind: kind, name: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
				remove(o)
				c.changed(isEndpoints, 0)
			}
		},
	}
}

// changed counts a change and asks for a sync within window (0: as soon as the minimum
// sync interval allows; see syncWindow).
func (c *Controller) changed(endpoints bool, window time.Duration) {
	if endpoints {
		c.metrics.EndpointChanges.Inc()
	} else {
		c.metrics.ServiceChanges.Inc()
	}
	c.setPending()
	providers, _ := c.currentProviders()
	for _, p := range providers {
		c.metrics.LastQueuedTimestamp.WithLabelValues(string(p.Family())).SetToCurrentTime()
	}
	c.health.QueuedUpdate()
	c.runner.RequestWithin(window)
}

// nodeHandler follows this node's Node object: deletion makes /healthz fail so load
// balancers drain the node, and a change of addresses or zone rebuilds the proxiers'
// configuration and forces a full sync.
func (c *Controller) nodeHandler(ctx context.Context) cache.ResourceEventHandler {
	logger := klog.FromContext(ctx)
	update := func(obj any) {
		n, ok := obj.(*v1.Node)
		if !ok {
			return
		}
		c.health.SetNodeDeleting(n.DeletionTimestamp != nil)
		logger.V(4).Info("Node event", "node", klog.KObj(n), "resourceVersion", n.ResourceVersion)
		facts, err := node.FromNode(n)
		providers, current := c.currentProviders()
		if err != nil {
			// kube-proxy keeps programming with the addresses it has; so do we, but
			// say so: a node without addresses is a misconfiguration worth seeing.
			if providers != nil {
				logger.Info("Node update without usable addresses; keeping the previous configuration", "node", klog.KObj(n), "err", err.Error(), "ips", current.IPs)
			}
			return
		}
		same := facts.Equal(current)
		if providers == nil || same {
			return
		}
		logger.Info("Node changed; rebuilding the configuration", "ips", facts.IPs, "zone", facts.Zone, "podCIDRs", facts.PodCIDRs)
		if err := c.buildProviders(ctx, facts); err != nil {
			logger.Error(err, "Keeping the previous configuration")
			return
		}
		c.runner.Request()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(any) { c.health.SetNodeDeleting(true) },
	}
}
