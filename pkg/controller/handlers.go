package controller

import (
	"context"
	"slices"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/switchyard-io/switchyard/pkg/node"
)

// Informer callbacks only record the change and request a sync; they never touch the
// kernel, so a burst of events costs one sync.

func (c *Controller) serviceHandler(ctx context.Context) cache.ResourceEventHandler {
	logger := klog.FromContext(ctx)
	update := func(obj any) {
		svc, ok := obj.(*v1.Service)
		if !ok {
			return
		}
		if err := c.tracker.OnServiceUpdate(svc); err != nil {
			// One bad Service never stops the others: its usable parts are
			// programmed, the rest is reported.
			logger.Error(err, "Service partly invalid", "service", klog.KObj(svc))
			c.metrics.InvalidObjects.WithLabelValues("Service").Inc()
			c.events.Eventf(svc, v1.EventTypeWarning, "InvalidService", "switchyard cannot program all of this Service: %v", err)
		}
		c.changed(false)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if svc, ok := obj.(*v1.Service); ok {
				c.tracker.OnServiceDelete(svc)
				c.changed(false)
			}
		},
	}
}

func (c *Controller) sliceHandler(ctx context.Context) cache.ResourceEventHandler {
	logger := klog.FromContext(ctx)
	update := func(obj any) {
		slice, ok := obj.(*discovery.EndpointSlice)
		if !ok {
			return
		}
		if err := c.tracker.OnEndpointSliceUpdate(slice); err != nil {
			logger.Error(err, "EndpointSlice partly invalid", "endpointSlice", klog.KObj(slice))
			c.metrics.InvalidObjects.WithLabelValues("EndpointSlice").Inc()
			c.events.Eventf(slice, v1.EventTypeWarning, "InvalidEndpointSlice", "switchyard cannot program all of this EndpointSlice: %v", err)
		}
		c.changed(true)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if slice, ok := obj.(*discovery.EndpointSlice); ok {
				c.tracker.OnEndpointSliceDelete(slice)
				c.changed(true)
			}
		},
	}
}

// changed counts a change and asks for a sync.
func (c *Controller) changed(endpoints bool) {
	if endpoints {
		c.metrics.EndpointChanges.Inc()
	} else {
		c.metrics.ServiceChanges.Inc()
	}
	c.metrics.LastQueuedTimestamp.SetToCurrentTime()
	c.health.QueuedUpdate()
	c.runner.Request()
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
		facts, err := node.FromNode(n)
		if err != nil {
			return
		}
		c.mu.Lock()
		known := c.proxiers != nil
		same := facts.Name == c.facts.Name && facts.Zone == c.facts.Zone && slices.Equal(facts.IPs, c.facts.IPs)
		c.mu.Unlock()
		if !known || same {
			return
		}
		logger.Info("Node changed; rebuilding the configuration", "ips", facts.IPs, "zone", facts.Zone)
		if err := c.buildProxiers(ctx, facts); err != nil {
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
