package nftables

import (
	"cmp"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
)

// Elements mirrors the elements of the shared sets and maps (cluster-ips, service-ips,
// …) that were applied, each with the service ports that want it. Keeping it in memory
// is what lets a partial sync write only the elements that changed, without listing the
// kernel's (kube-proxy's nftElementStorage); a full sync rebuilds it and compares it
// with what the kernel lists. nodeport-ips is not in it: only full syncs write it.
//
// An element is wanted by several service ports when they share it: the ports of one
// Service share their cluster IP in cluster-ips, services with a common endpoint share
// its hairpin-connections element. It stays while one of them wants it. Two ports that
// want one map key with different verdicts (two Services claiming one external IP and
// port, which the API allows) get the verdict of the first port by name, so that the
// choice does not depend on the order of events.
type Elements struct {
	m map[elementKey]owners
}

// elementKey is a container and an element key in it.
type elementKey struct {
	container, key string
}

// owners are the service ports that want one element, sorted by name, each with the
// value and comment it wants.
type owners []owned

type owned struct {
	port           endpoints.ServicePortName
	value, comment string
}

// NewElements returns an empty mirror.
func NewElements() *Elements { return &Elements{m: map[elementKey]owners{}} }

// Len returns the number of elements mirrored.
func (e *Elements) Len() int { return len(e.m) }

// effective returns the owner whose value is in the kernel, false when nobody wants the
// element.
func (o owners) effective() (owned, bool) {
	if len(o) == 0 {
		return owned{}, false
	}
	return o[0], true
}

// with returns o plus (or with a new value for) port's element.
func (o owners) with(x owned) owners {
	i, found := slices.BinarySearchFunc(o, x.port, func(a owned, p endpoints.ServicePortName) int { return a.port.Compare(p) })
	out := slices.Clone(o)
	if found {
		out[i] = x
		return out
	}
	return slices.Insert(out, i, x)
}

// without returns o without port's element.
func (o owners) without(port endpoints.ServicePortName) owners {
	i, found := slices.BinarySearchFunc(o, port, func(a owned, p endpoints.ServicePortName) int { return a.port.Compare(p) })
	if !found {
		return o
	}
	out := slices.Clone(o)
	return slices.Delete(out, i, i+1)
}

// elementDelta is the new owners of the elements a partial render touched; an empty
// list means the element is gone.
type elementDelta map[elementKey]owners

// commit applies a partial render's delta to the mirror, once the kernel took it.
func (e *Elements) commit(d elementDelta) {
	for k, o := range d {
		if len(o) == 0 {
			delete(e.m, k)
		} else {
			e.m[k] = o
		}
	}
}

// Snapshot returns the mirrored elements as container → key → value, for tests and the
// state digest.
func (e *Elements) Snapshot() map[string]map[string]string {
	out := map[string]map[string]string{}
	for k, o := range e.m {
		x, _ := o.effective()
		if out[k.container] == nil {
			out[k.container] = map[string]string{}
		}
		out[k.container][k.key] = x.value
	}
	return out
}

// knftElement returns the element to add or delete.
func knftElement(container, key, value, comment string) *knftables.Element {
	el := &knftables.Element{Key: strings.Split(key, " . ")}
	if isSetName(container) {
		el.Set = container
	} else {
		el.Map = container
		if value != "" {
			el.Value = strings.Split(value, " . ")
		}
	}
	if comment != "" {
		el.Comment = &comment
	}
	return el
}

// sortedKeys returns the keys of a delta in a fixed order, so that transactions are
// deterministic.
func sortedKeys[V any](m map[elementKey]V) []elementKey {
	keys := make([]elementKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b elementKey) int {
		return cmp.Or(strings.Compare(a.container, b.container), strings.Compare(a.key, b.key))
	})
	return keys
}
