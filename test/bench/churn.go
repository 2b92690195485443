package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/switchyard-io/switchyard/pkg/iptables"
)

// Churn kinds, as the soak counts them.
const (
	ChurnEndpointAdd    = "endpoint-add"
	ChurnEndpointRemove = "endpoint-remove"
	ChurnReadyFlip      = "ready-flip"
	ChurnPortChange     = "port-change"
	ChurnServiceCreate  = "service-create"
	ChurnServiceDelete  = "service-delete"
)

// ChurnEndpoint is one endpoint in the churn's model.
type ChurnEndpoint struct {
	Address string
	Ready   bool
}

// ChurnService is one Service in the churn's model: what the API server holds for it
// after the last successful write.
type ChurnService struct {
	Exists    bool
	Port      int32
	Endpoints []ChurnEndpoint
	busy      bool
}

// ReadyCount is the number of ready endpoints.
func (s *ChurnService) ReadyCount() int {
	n := 0
	for _, e := range s.Endpoints {
		if e.Ready {
			n++
		}
	}
	return n
}

// Churn writes a steady mix of Service and EndpointSlice changes through a Loader
// and keeps a model of what it wrote, so that the rules can be checked against it
// afterwards. Each Service has one EndpointSlice (SliceName(i, 0)); at most one write
// per Service is in flight at a time.
type Churn struct {
	Loader *Loader
	// Target is the number of Services the churn keeps (it deletes one when at
	// Target and creates one when below), Endpoints the endpoints of a new Service.
	Target, Endpoints int

	mu       sync.Mutex
	rng      *rand.Rand
	services []ChurnService
	absent   []int
	nextIP   int
	counts   map[string]int
}

// NewChurn returns a churn over Services 0..target-1, all existing with endpoints
// EndpointIP(i, 0..endpoints-1), ready, port 80: what Loader.Load creates.
func NewChurn(loader *Loader, target, endpoints int, seed uint64) *Churn {
	c := &Churn{Loader: loader, Target: target, Endpoints: endpoints, rng: rand.New(rand.NewPCG(seed, 7)), counts: map[string]int{}}
	c.services = make([]ChurnService, target)
	for i := range c.services {
		c.services[i] = c.fresh(i)
	}
	return c
}

func (c *Churn) fresh(i int) ChurnService {
	s := ChurnService{Exists: true, Port: 80}
	for _, address := range Addresses(i, c.Endpoints) {
		s.Endpoints = append(s.Endpoints, ChurnEndpoint{Address: address, Ready: true})
	}
	return s
}

// newIP is an address for an added endpoint: 10.246.0.0/15, outside the addresses
// the loader uses, different for each of the first 131,072 additions.
func (c *Churn) newIP() string {
	c.nextIP++
	n := c.nextIP % (1 << 17)
	return netip.AddrFrom4([4]byte{10, byte(246 + n>>16), byte(n >> 8), byte(n)}).String()
}

// Snapshot returns a copy of the model.
func (c *Churn) Snapshot() []ChurnService {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ChurnService, len(c.services))
	for i, s := range c.services {
		out[i] = ChurnService{Exists: s.Exists, Port: s.Port, Endpoints: append([]ChurnEndpoint(nil), s.Endpoints...)}
	}
	return out
}

// Totals returns the number of existing Services and their endpoints.
func (c *Churn) Totals() (services, endpoints int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.services {
		if s.Exists {
			services++
			endpoints += len(s.Endpoints)
		}
	}
	return services, endpoints
}

// Counts returns how many changes of each kind were written.
func (c *Churn) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// plan picks the next change: a Service index not busy, the kind, and the Service
// as it will be after the write. It marks the Service busy.
func (c *Churn) plan() (int, string, ChurnService) {
	c.mu.Lock()
	defer c.mu.Unlock()
	existing := len(c.services) - len(c.absent)
	roll := c.rng.IntN(100)
	if roll < 20 {
		// Service create/delete: 20%, alternating around Target.
		if existing < c.Target && len(c.absent) > 0 {
			k := c.rng.IntN(len(c.absent))
			i := c.absent[k]
			if !c.services[i].busy {
				c.absent = append(c.absent[:k], c.absent[k+1:]...)
				c.services[i].busy = true
				return i, ChurnServiceCreate, c.fresh(i)
			}
		}
		i := c.pickExisting()
		c.services[i].busy = true
		return i, ChurnServiceDelete, ChurnService{}
	}
	i := c.pickExisting()
	s := c.services[i]
	s.Endpoints = append([]ChurnEndpoint(nil), s.Endpoints...)
	c.services[i].busy = true
	switch {
	case roll < 30:
		// Port change: 10%, the Service's port between 80 and 89.
		s.Port = 80 + (s.Port-80+1+int32(c.rng.IntN(9)))%10
		return i, ChurnPortChange, s
	case roll < 65:
		// Ready flip: 35%.
		k := c.rng.IntN(len(s.Endpoints))
		s.Endpoints[k].Ready = !s.Endpoints[k].Ready
		return i, ChurnReadyFlip, s
	default:
		// Endpoint add or remove: 35%, keeping each Service between 5 and 15.
		add := c.rng.IntN(2) == 0
		if len(s.Endpoints) <= c.Endpoints/2 {
			add = true
		} else if len(s.Endpoints) >= c.Endpoints*3/2 {
			add = false
		}
		if add {
			s.Endpoints = append(s.Endpoints, ChurnEndpoint{Address: c.newIP(), Ready: true})
			return i, ChurnEndpointAdd, s
		}
		k := c.rng.IntN(len(s.Endpoints))
		s.Endpoints = append(s.Endpoints[:k], s.Endpoints[k+1:]...)
		return i, ChurnEndpointRemove, s
	}
}

// pickExisting returns a random existing Service that is not busy; the caller holds
// mu. With thousands of Services and a handful in flight it finds one at once.
func (c *Churn) pickExisting() int {
	for {
		i := c.rng.IntN(len(c.services))
		if c.services[i].Exists && !c.services[i].busy {
			return i
		}
	}
}

// Step writes one change and updates the model if the API server accepted it.
func (c *Churn) Step(ctx context.Context) (string, error) {
	i, kind, next := c.plan()
	err := c.write(ctx, i, kind, next)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.services[i].busy = false
	if err != nil {
		if kind == ChurnServiceCreate {
			c.absent = append(c.absent, i)
		}
		return kind, fmt.Errorf("%s %s: %w", kind, ServiceName(i), err)
	}
	c.services[i].Exists, c.services[i].Port, c.services[i].Endpoints = next.Exists, next.Port, next.Endpoints
	if kind == ChurnServiceDelete {
		c.absent = append(c.absent, i)
	}
	c.counts[kind]++
	return kind, nil
}

func (c *Churn) write(ctx context.Context, i int, kind string, next ChurnService) error {
	client := c.Loader.Client
	switch kind {
	case ChurnServiceDelete:
		return c.Loader.DeleteService(ctx, i, 1)
	case ChurnServiceCreate:
		return c.Loader.CreateService(ctx, i, c.Endpoints)
	case ChurnPortChange:
		patch := fmt.Sprintf(`{"spec":{"ports":[{"name":%q,"port":%d,"protocol":"TCP","targetPort":%d}]}}`, PortName, next.Port, TargetPort)
		_, err := client.CoreV1().Services(Namespace).Patch(ctx, ServiceName(i), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	default:
		// An unconditional update (no resourceVersion): the churn is the slice's
		// only writer and never has two writes to it in flight.
		_, err := client.DiscoveryV1().EndpointSlices(Namespace).Update(ctx, ChurnSlice(i, next), metav1.UpdateOptions{})
		return err
	}
}

// ChurnSlice is Service i's EndpointSlice as the model holds it, annotated with the
// trigger time now.
func ChurnSlice(i int, s ChurnService) *discoveryv1.EndpointSlice {
	slice := Slices(i, nil, time.Now())[0]
	for _, e := range s.Endpoints {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{e.Address},
			// A flipped endpoint is neither ready nor serving (a failing readiness
			// probe), so it leaves the rules.
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.Ready), Serving: ptr.To(e.Ready), Terminating: ptr.To(false)},
		})
	}
	return slice
}

// CheckNAT compares the nat table (iptables-save output) with the model and returns
// every difference: for each existing Service with ready endpoints, its KUBE-SVC-
// chain must jump to exactly the KUBE-SEP- chains of its ready endpoints and
// KUBE-SERVICES must send its port to it; a deleted Service, or one without ready
// endpoints, must have no jump from KUBE-SERVICES.
func CheckNAT(save string, model []ChurnService) []string {
	jumps := map[string][]string{}  // KUBE-SVC- chain → KUBE-SEP- targets
	dispatch := map[string]string{} // KUBE-SVC- chain → "--dport N" of its KUBE-SERVICES rule
	for line := range strings.Lines(save) {
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[0] != "-A" {
			continue
		}
		target := fields[len(fields)-1]
		switch {
		case strings.HasPrefix(fields[1], iptables.PrefixServiceCluster) && strings.HasPrefix(target, iptables.PrefixEndpoint):
			jumps[fields[1]] = append(jumps[fields[1]], target)
		case fields[1] == iptables.ChainServices && strings.HasPrefix(target, iptables.PrefixServiceCluster):
			if k := slices.Index(fields, "--dport"); k >= 0 && k+1 < len(fields) {
				dispatch[target] = fields[k+1]
			}
		}
	}
	var problems []string
	for i, s := range model {
		chain := ServiceChain(i)
		port, dispatched := dispatch[chain]
		if !s.Exists || s.ReadyCount() == 0 {
			if dispatched {
				problems = append(problems, fmt.Sprintf("%s (exists %t, %d ready): still dispatched to %s", ServiceName(i), s.Exists, s.ReadyCount(), chain))
			}
			continue
		}
		if want := strconv.Itoa(int(s.Port)); port != want {
			problems = append(problems, fmt.Sprintf("%s: KUBE-SERVICES sends port %q to %s, want %s", ServiceName(i), port, chain, want))
		}
		var want []string
		for _, e := range s.Endpoints {
			if e.Ready {
				want = append(want, EndpointChain(i, e.Address))
			}
		}
		got := slices.Clone(jumps[chain])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("%s: %s jumps to %v, want %v", ServiceName(i), chain, got, want))
		}
	}
	return problems
}
