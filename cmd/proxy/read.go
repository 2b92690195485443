package main

import (
	"context"

	"github.com/switchyard-io/switchyard/pkg/manifest"
)

// readObjects reads dry-run's input from files or from a cluster. Notices (skipped
// kinds) come back with the errors, marked as such.
func readObjects(ctx context.Context, opts *dryRunOptions) (*objects, []error) {
	if opts.kubeconfig != "" {
		in, err := manifest.FromCluster(ctx, opts.kubeconfig)
		if err != nil {
			return nil, []error{err}
		}
		return &objects{Services: in.Services, EndpointSlices: in.EndpointSlices, Nodes: in.Nodes, lookup: func(any) string { return "cluster" }}, nil
	}
	in, errs := manifest.Read(opts.files)
	if in == nil {
		return nil, errs
	}
	lookup := func(obj any) string {
		src, ok := in.SourceOf(obj)
		if !ok {
			return "input"
		}
		// The model's errors name the object themselves; say only where it is.
		src.Kind, src.Namespace, src.Name = "", "", ""
		return src.String()
	}
	return &objects{Services: in.Services, EndpointSlices: in.EndpointSlices, Nodes: in.Nodes, lookup: lookup}, errs
}
