package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/manifest"
)

// streamRenderInput is loadRenderInput for the dry runs that need only the snapshot
// (iptables, ipvs and nftables mode, not explain): reading from files, each Service
// and EndpointSlice goes into the change tracker as soon as it is decoded and is then
// dropped, so the decoded input is never held whole. At 10k Services × 10 endpoints
// the decoded objects were 49 MB of a 70 MB peak heap (the target is a
// 150 MB peak RSS). Everything printed is the same, in the same order, as
// loadRenderInput's: the read problems, then the node and flag checks, then the
// model's problems with the Services and then with the EndpointSlices.
func streamRenderInput(ctx context.Context, opts *dryRunOptions, stderr io.Writer) (*renderInput, int) {
	if opts.kubeconfig != "" {
		return loadRenderInput(ctx, opts, stderr)
	}
	feed := &trackerFeed{tracker: endpoints.NewTracker("")}
	for _, err := range manifest.ReadEach(opts.files, feed.add) {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
	}
	if feed.services == 0 && feed.slices == 0 {
		fmt.Fprintln(stderr, "switchyard: no Services or EndpointSlices could be read")
		return nil, 1
	}
	facts, configs, err := nodeAndConfigs(opts, feed.nodes)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return nil, 2
	}
	// The node is known only now that every object has been read (it is the only
	// Node in the input unless --node says otherwise); the tracker needs it only
	// when it merges endpoints, in Snapshot.
	feed.tracker.SetNodeName(facts.Name)
	_, _ = stderr.Write(feed.serviceProblems.Bytes())
	_, _ = stderr.Write(feed.sliceProblems.Bytes())
	return &renderInput{facts: facts, configs: configs, snap: feed.tracker.Snapshot()}, 0
}

// trackerFeed receives the objects manifest.ReadEach decodes: Services and
// EndpointSlices go straight into the tracker, Nodes are kept (there are few, and
// which one is rendered for is decided after reading).
type trackerFeed struct {
	tracker         *endpoints.Tracker
	nodes           []*v1.Node
	services        int
	slices          int
	serviceProblems bytes.Buffer
	sliceProblems   bytes.Buffer
}

// add files one decoded object. The model's problems are held back and printed after
// the read problems, as modelSnapshot prints them.
func (f *trackerFeed) add(obj runtime.Object, src manifest.Source) {
	// The model's errors name the object themselves; say only where it is.
	src.Kind, src.Namespace, src.Name = "", "", ""
	switch o := obj.(type) {
	case *v1.Service:
		f.services++
		reportModelError(&f.serviceProblems, src.String(), f.tracker.OnServiceUpdate(o))
	case *discovery.EndpointSlice:
		f.slices++
		reportModelError(&f.sliceProblems, src.String(), f.tracker.OnEndpointSliceUpdate(o))
	case *v1.Node:
		f.nodes = append(f.nodes, o)
	}
}
