package ipvs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/switchyard-io/switchyard/pkg/endpoints"
	"github.com/switchyard-io/switchyard/pkg/proxy"
	"github.com/switchyard-io/switchyard/pkg/xtables"
)

// Kernel bundles the kernel interfaces a Proxier drives.
type Kernel struct {
	IPVS     Interface
	Links    Links
	IPSets   IPSets
	IPTables xtables.Interface
	Sysctl   Sysctl
}

// appliedServer is what the Proxier knows the kernel holds for one of its virtual
// servers.
type appliedServer struct {
	owner endpoints.ServicePortName
	vs    VirtualServer
	// real maps each real server in the kernel to its weight (0 while terminating).
	real map[netip.AddrPort]int
}

// Proxier programs one IP family's IPVS state from snapshots. Each Sync decides
// explicitly between a full reconcile (read the kernel, converge everything) and a
// partial one (apply the difference for the snapshot's changed service ports only,
// O(changed) netlink operations). It is driven by one goroutine; CheckTerminating and
// RequestFullSync may be called from others.
type Proxier struct {
	cfg *Config
	k   Kernel
	now func() time.Time

	mu sync.Mutex
	// state decides full or partial syncs and remembers what was applied.
	state *proxy.SyncState

	frags    map[endpoints.ServicePortName]*Fragment
	servers  map[Key]*appliedServer
	addrRefs map[netip.Addr]int
	setRefs  map[SetEntry]int
	// terminating holds, per virtual server, the weight-0 real servers waiting for
	// their connections to end, with when they were drained.
	terminating map[Key]map[netip.AddrPort]time.Time
	// rules is the companion iptables-restore input the last full sync applied.
	rules []byte
}

// NewProxier returns a Proxier for cfg's family. A full sync runs at least every
// fullSyncPeriod (0 disables the periodic one); now is the clock (nil: time.Now).
func NewProxier(cfg *Config, k Kernel, fullSyncPeriod time.Duration, now func() time.Time) (*Proxier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ipvs proxier: %w", err)
	}
	if k.IPVS == nil || k.Links == nil || k.IPSets == nil || k.IPTables == nil || k.Sysctl == nil {
		return nil, errors.New("ipvs proxier: every kernel interface is needed")
	}
	if now == nil {
		now = time.Now
	}
	return &Proxier{cfg: cfg, k: k, now: now, state: proxy.NewSyncState(fullSyncPeriod, now)}, nil
}

var (
	_ proxy.Provider           = &Proxier{}
	_ proxy.TerminationChecker = &Proxier{}
)

// Family returns the IP family the proxier programs.
func (p *Proxier) Family() v1.IPFamily { return p.cfg.Family }

// CheckKernel implements proxy.Provider with the canary chains that every full sync
// creates: a firewall reload that flushes the tables also removes the masquerade and
// KUBE-IPVS-FILTER rules, which only a full sync writes.
func (p *Proxier) CheckKernel(ctx context.Context) (bool, error) {
	// Before a sync has applied anything there is no canary to find, and the next
	// sync is full anyway: a check that races a slow first sync (seconds at 10k
	// services) must not queue a second full sync behind it.
	if p.state.Applied() == nil {
		return true, nil
	}
	return xtables.CanaryPresent(ctx, p.k.IPTables)
}

// RequestFullSync makes the next Sync a full one.
func (p *Proxier) RequestFullSync(reason string) { p.state.RequestFull(reason) }

// Stats counts the kernel operations of a sync.
type Stats struct {
	// Services is the number of service ports rendered.
	Services int
	// VirtualServers is the number of virtual servers desired after the sync (full
	// syncs only).
	VirtualServers int
	// Added, Updated and Deleted count virtual servers.
	Added, Updated, Deleted int
	// RealAdded, RealUpdated (weight changes, including draining) and RealDeleted
	// count real servers.
	RealAdded, RealUpdated, RealDeleted int
	// AddressesAdded and AddressesDeleted count kube-ipvs0 addresses.
	AddressesAdded, AddressesDeleted int
	// SetChanges counts ipset members added or deleted (partial syncs) or written
	// (full syncs).
	SetChanges int
}

// Ops returns the number of netlink changes.
func (s Stats) Ops() int {
	return s.Added + s.Updated + s.Deleted + s.RealAdded + s.RealUpdated + s.RealDeleted + s.AddressesAdded + s.AddressesDeleted
}

// SyncResult describes one sync.
type SyncResult struct {
	// Full is true for a full reconcile.
	Full bool
	// Reason says why a sync was full.
	Reason string
	// Stats counts what was done.
	Stats Stats
	// ServiceErrors are problems with single service ports that did not fail the sync
	// (an invalid scheduler annotation, a virtual server claimed twice); the caller
	// logs them.
	ServiceErrors []error
	// Duration is the sync's wall time.
	Duration time.Duration
	// Payloads are the ipset and iptables restore inputs a full sync wrote.
	Payloads []proxy.Payload
	// Rules counts the companion iptables rules a full sync wrote.
	Rules RuleCounts
	// RestoreFailed is true when the companion iptables-restore failed.
	RestoreFailed bool
}

// Sync implements proxy.Provider: SyncDetailed, summed up.
func (p *Proxier) Sync(ctx context.Context, snap *endpoints.Snapshot) (proxy.Result, error) {
	res, err := p.SyncDetailed(ctx, snap)
	st := res.Stats
	out := proxy.Result{
		Full: res.Full, Reason: res.Reason, Duration: res.Duration, ServiceErrors: res.ServiceErrors,
		Payloads: res.Payloads, RestoreFailed: res.RestoreFailed,
		Details: []any{"servicePorts", st.Services, "virtualServers", st.VirtualServers,
			"added", st.Added, "updated", st.Updated, "deleted", st.Deleted,
			"realAdded", st.RealAdded, "realUpdated", st.RealUpdated, "realDeleted", st.RealDeleted,
			"addresses", st.AddressesAdded - st.AddressesDeleted, "setChanges", st.SetChanges},
	}
	if res.Full {
		out.RulesWritten = map[string]int{"filter": res.Rules.FilterRules, "nat": res.Rules.NATRules}
		if err == nil {
			out.RulesTotal = out.RulesWritten
		}
	}
	return out, err
}

// SyncDetailed programs snap and reports it in IPVS mode's terms. On failure nothing
// is assumed about the kernel and the next sync is full.
func (p *Proxier) SyncDetailed(ctx context.Context, snap *endpoints.Snapshot) (SyncResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.state.Begin(snap)
	res := SyncResult{Full: d.Full, Reason: d.Reason}
	var err error
	if res.Full {
		err = p.syncFull(ctx, snap, &res)
	} else {
		err = p.syncPartial(ctx, snap, d.Changed, &res)
	}
	res.Duration = p.now().Sub(d.Started)
	if err != nil {
		p.state.Failed()
		return res, fmt.Errorf("%s IPVS sync: %w", proxy.SyncKind(res.Full), err)
	}
	p.state.Succeeded(snap)
	return res, nil
}

// nodePortSets are the sets whose members name node ports, per protocol.
var nodePortSets = map[v1.Protocol]string{v1.ProtocolTCP: SetNodePortTCP, v1.ProtocolUDP: SetNodePortUDP, v1.ProtocolSCTP: SetNodePortSCTP}

// owned decides whether a virtual server found in the kernel is Switchyard's: its
// address is on kube-ipvs0, or it is a node port that Switchyard's node-port sets name
// (those survive restarts), or this process created it. Anything else (another
// program's virtual servers, or anything in --ipvs-exclude-cidrs) is left alone.
type ownership struct {
	cfg       *Config
	bound     map[netip.Addr]bool
	nodePorts map[v1.Protocol]map[string]bool // set members
	known     map[Key]*appliedServer
	desired   map[Key]endpoints.ServicePortName
}

func (o *ownership) owns(k Key) bool {
	if endpoints.FamilyOf(k.Addr) != o.cfg.Family || o.cfg.excluded(k.Addr) {
		return false
	}
	if o.bound[k.Addr] || o.known[k] != nil {
		return true
	}
	if _, ok := o.desired[k]; ok {
		return true
	}
	members := o.nodePorts[k.Protocol]
	port := strconv.Itoa(int(k.Port))
	if k.Protocol == v1.ProtocolSCTP {
		// The SCTP node-port set names each address (hash:ip,port), the old ones too.
		return members[k.Addr.String()+",sctp:"+port]
	}
	// A TCP or UDP node port is Switchyard's on whatever address: the sets name the
	// port only, and the node's addresses change (a re-IP: the virtual server on the
	// old address must go, as kube-proxy's IPVS mode deletes every virtual server it
	// does not want). A virtual server on another port is still left alone.
	return members[port]
}

// readOwnership reads what the kernel says about ownership: kube-ipvs0's addresses and
// the node-port sets left by a previous run.
func (p *Proxier) readOwnership(ctx context.Context) (*ownership, []netip.Addr, error) {
	o := &ownership{cfg: p.cfg, bound: map[netip.Addr]bool{}, nodePorts: map[v1.Protocol]map[string]bool{}, known: p.servers}
	addrs, err := p.k.Links.Addresses(DummyInterface)
	if err != nil && !errors.Is(err, ErrNoLink) {
		return nil, nil, err
	}
	var familyAddrs []netip.Addr
	for _, a := range addrs {
		if endpoints.FamilyOf(a) == p.cfg.Family {
			o.bound[a] = true
			familyAddrs = append(familyAddrs, a)
		}
	}
	for proto, set := range nodePortSets {
		members, err := p.k.IPSets.Entries(ctx, SetName(set, p.cfg.Family))
		if err != nil && !errors.Is(err, ErrNoSet) {
			return nil, nil, err
		}
		o.nodePorts[proto] = map[string]bool{}
		for _, m := range members {
			o.nodePorts[proto][m] = true
		}
	}
	return o, familyAddrs, nil
}

// ensureNode sets the sysctls and timeouts, creates the dummy link and hooks.
func (p *Proxier) ensureNode(ctx context.Context) error {
	var errs []error
	for _, kv := range Sysctls(p.cfg) {
		if cur, err := p.k.Sysctl.Get(kv[0]); err == nil && cur == kv[1] {
			continue
		}
		if err := p.k.Sysctl.Set(kv[0], kv[1]); err != nil {
			errs = append(errs, err)
		}
	}
	if !p.cfg.Timeouts.IsZero() {
		if err := p.k.IPVS.SetTimeouts(p.cfg.Timeouts); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.k.Links.EnsureDummy(DummyInterface); err != nil {
		errs = append(errs, err)
	}
	if err := xtables.EnsureHooks(ctx, p.k.IPTables, Hooks()); err != nil {
		errs = append(errs, err)
	}
	// The canary chains, as in iptables mode and kube-proxy's IPVS mode: see
	// CheckKernel.
	if err := xtables.EnsureCanary(ctx, p.k.IPTables); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// syncFull reads the kernel and converges it on the full render of snap.
func (p *Proxier) syncFull(ctx context.Context, snap *endpoints.Snapshot, res *SyncResult) error {
	if err := p.ensureNode(ctx); err != nil {
		return fmt.Errorf("preparing the node: %w", err)
	}
	st := Render(snap, p.cfg)
	res.ServiceErrors = st.Errors
	res.Stats.Services = len(st.Fragments)
	res.Stats.VirtualServers = len(st.Servers)

	own, boundAddrs, err := p.readOwnership(ctx)
	if err != nil {
		return fmt.Errorf("reading the kernel's state: %w", err)
	}
	own.desired = st.Owners
	kernelServers, err := p.k.IPVS.VirtualServers()
	if err != nil {
		return err
	}
	inKernel := map[Key]VirtualServer{}
	for _, vs := range kernelServers {
		inKernel[vs.Key] = vs
	}

	// Sets first: the companion rules reference them.
	payload := st.Sets.RestoreFull(p.cfg.Family)
	res.Payloads = append(res.Payloads, proxy.Payload{Kind: proxy.PayloadIPSetRestore, Data: payload})
	if err := p.k.IPSets.Restore(ctx, payload); err != nil {
		return fmt.Errorf("restoring ipsets: %w", err)
	}
	for _, members := range st.Sets {
		res.Stats.SetChanges += len(members)
	}
	rules := RenderRules(p.cfg)
	res.Payloads = append(res.Payloads, proxy.Payload{Kind: proxy.PayloadIPTablesRestore, Data: rules})
	res.Rules = countRules(rules)
	if err := p.k.IPTables.Restore(ctx, rules); err != nil {
		res.RestoreFailed = true
		return fmt.Errorf("restoring the companion iptables rules: %w", err)
	}
	p.rules = rules

	// Addresses before virtual servers, so a new VIP is local when its service appears.
	bound := map[netip.Addr]bool{}
	for _, a := range boundAddrs {
		bound[a] = true
	}
	var errs []error
	for _, a := range st.Addresses {
		if bound[a] {
			continue
		}
		if err := p.k.Links.AddAddress(DummyInterface, a); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Stats.AddressesAdded++
	}

	oldTerminating := p.terminating
	p.servers = map[Key]*appliedServer{}
	p.terminating = map[Key]map[netip.AddrPort]time.Time{}
	for _, ds := range st.Servers {
		owner := st.Owners[ds.Key]
		cur, exists := inKernel[ds.Key]
		if !exists {
			a, err := p.addServer(owner, ds, &res.Stats)
			if a != nil {
				p.servers[ds.Key] = a
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", owner, err))
			}
			continue
		}
		// Adopt: the kernel's virtual server stays; only differences are written, so
		// a restart never interrupts traffic.
		if !cur.SameSettings(&ds.VirtualServer) {
			if err := p.k.IPVS.UpdateVirtualServer(ds.VirtualServer); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", owner, err))
				continue
			}
			res.Stats.Updated++
		}
		real, err := p.k.IPVS.RealServers(ds.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", owner, err))
			continue
		}
		a := &appliedServer{owner: owner, vs: ds.VirtualServer, real: map[netip.AddrPort]int{}}
		for _, r := range real {
			a.real[r.Addr] = r.Weight
		}
		p.servers[ds.Key] = a
		// Keep the drain times of real servers already terminating.
		if t := oldTerminating[ds.Key]; t != nil {
			p.terminating[ds.Key] = maps.Clone(t)
		}
		if err := p.syncReal(a, ds.RealServers, &res.Stats); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", owner, err))
		}
	}
	// Delete Switchyard's virtual servers that nothing wants any more.
	for _, vs := range kernelServers {
		if _, want := st.Owners[vs.Key]; want || !own.owns(vs.Key) {
			continue
		}
		if err := p.k.IPVS.DeleteVirtualServer(vs.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Stats.Deleted++
	}
	desiredAddrs := map[netip.Addr]bool{}
	for _, a := range st.Addresses {
		desiredAddrs[a] = true
	}
	for _, a := range boundAddrs {
		if desiredAddrs[a] || p.cfg.excluded(a) {
			continue
		}
		if err := p.k.Links.DeleteAddress(DummyInterface, a); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Stats.AddressesDeleted++
	}

	p.frags = st.Fragments
	p.addrRefs = map[netip.Addr]int{}
	p.setRefs = map[SetEntry]int{}
	for _, f := range st.Fragments {
		p.countRefs(f, 1)
	}
	return errors.Join(errs...)
}

func (p *Proxier) countRefs(f *Fragment, delta int) {
	if f == nil {
		return
	}
	for _, a := range f.Addresses {
		p.addrRefs[a] += delta
		if p.addrRefs[a] == 0 {
			delete(p.addrRefs, a)
		}
	}
	for _, e := range f.Entries {
		p.setRefs[e] += delta
		if p.setRefs[e] == 0 {
			delete(p.setRefs, e)
		}
	}
}

// addServer creates a virtual server and its real servers.
func (p *Proxier) addServer(owner endpoints.ServicePortName, ds DesiredServer, st *Stats) (*appliedServer, error) {
	if err := p.k.IPVS.AddVirtualServer(ds.VirtualServer); err != nil {
		return nil, err
	}
	st.Added++
	a := &appliedServer{owner: owner, vs: ds.VirtualServer, real: map[netip.AddrPort]int{}}
	var errs []error
	for _, r := range ds.RealServers {
		if err := p.k.IPVS.AddRealServer(ds.Key, r); err != nil {
			errs = append(errs, err)
			continue
		}
		a.real[r.Addr] = r.Weight
		st.RealAdded++
	}
	return a, errors.Join(errs...)
}

// syncReal converges a virtual server's real servers (as a.real says the kernel holds
// them) on want. A removed TCP real server is drained (weight 0) and deleted later by
// CheckTerminating, so established connections survive (kubernetes#57841); UDP and
// SCTP ones, and those of hashing schedulers (kubernetes#121590), are deleted at once.
// A terminating real server that is wanted again gets its weight back at once.
func (p *Proxier) syncReal(a *appliedServer, want []RealServer, st *Stats) error {
	k := a.vs.Key
	var errs []error
	wanted := make(map[netip.AddrPort]bool, len(want))
	for _, r := range want {
		wanted[r.Addr] = true
		cur, ok := a.real[r.Addr]
		switch {
		case !ok:
			if err := p.k.IPVS.AddRealServer(k, r); err != nil {
				errs = append(errs, err)
				continue
			}
			st.RealAdded++
		case cur != r.Weight:
			if err := p.k.IPVS.UpdateRealServer(k, r); err != nil {
				errs = append(errs, err)
				continue
			}
			st.RealUpdated++
		default:
			continue
		}
		a.real[r.Addr] = r.Weight
		p.stopTerminating(k, r.Addr)
	}
	drain := k.Protocol == v1.ProtocolTCP && !hashingScheduler(a.vs.Scheduler)
	for _, addr := range slices.SortedFunc(maps.Keys(a.real), netip.AddrPort.Compare) {
		if wanted[addr] {
			continue
		}
		if drain {
			if _, draining := p.terminating[k][addr]; draining {
				continue
			}
			if a.real[addr] != 0 {
				if err := p.k.IPVS.UpdateRealServer(k, RealServer{Addr: addr, Weight: 0}); err != nil {
					errs = append(errs, err)
					continue
				}
				st.RealUpdated++
				a.real[addr] = 0
			}
			if p.terminating[k] == nil {
				p.terminating[k] = map[netip.AddrPort]time.Time{}
			}
			p.terminating[k][addr] = p.now()
			continue
		}
		if err := p.k.IPVS.DeleteRealServer(k, addr); err != nil {
			errs = append(errs, err)
			continue
		}
		st.RealDeleted++
		delete(a.real, addr)
		p.stopTerminating(k, addr)
	}
	return errors.Join(errs...)
}

func (p *Proxier) stopTerminating(k Key, addr netip.AddrPort) {
	if t := p.terminating[k]; t != nil {
		delete(t, addr)
		if len(t) == 0 {
			delete(p.terminating, k)
		}
	}
}

// syncPartial applies the changes of snap's changed service ports.
func (p *Proxier) syncPartial(ctx context.Context, snap *endpoints.Snapshot, changed []endpoints.ServicePortName, res *SyncResult) error {
	var errs []error
	delta := setDelta{add: map[string][]string{}, del: map[string][]string{}}
	addrDelta := map[netip.Addr]int{}
	for _, name := range changed {
		old := p.frags[name]
		var next *Fragment
		if port := snap.Services[name]; port != nil {
			var err error
			next, err = RenderService(port, snap.Endpoints[name], p.cfg)
			if err != nil {
				res.ServiceErrors = append(res.ServiceErrors, err)
			}
		}
		if old == nil && next == nil {
			continue
		}
		res.Stats.Services++

		// Reference counts: an address or set member shared by two service ports
		// stays until neither needs it.
		beforeAddr := map[netip.Addr]int{}
		for _, a := range unionAddrs(old, next) {
			beforeAddr[a] = p.addrRefs[a]
		}
		beforeSet := map[SetEntry]int{}
		for _, e := range unionEntries(old, next) {
			beforeSet[e] = p.setRefs[e]
		}
		p.countRefs(old, -1)
		p.countRefs(next, 1)
		for a, before := range beforeAddr {
			after := p.addrRefs[a]
			switch {
			case before == 0 && after > 0:
				addrDelta[a]++
			case before > 0 && after == 0:
				addrDelta[a]--
			}
		}
		for e, before := range beforeSet {
			after := p.setRefs[e]
			switch {
			case before == 0 && after > 0:
				delta.add[e.Set] = append(delta.add[e.Set], e.Entry)
			case before > 0 && after == 0:
				delta.del[e.Set] = append(delta.del[e.Set], e.Entry)
			}
		}
		if next == nil {
			delete(p.frags, name)
		} else {
			p.frags[name] = next
		}

		// New VIPs must be local before their virtual servers take traffic.
		for _, a := range sortedAddrDelta(addrDelta, 1) {
			if err := p.k.Links.AddAddress(DummyInterface, a); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			} else {
				res.Stats.AddressesAdded++
			}
			delete(addrDelta, a)
		}
		if err := p.syncServers(name, old, next, &res.Stats, res); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	for _, a := range sortedAddrDelta(addrDelta, -1) {
		if err := p.k.Links.DeleteAddress(DummyInterface, a); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Stats.AddressesDeleted++
	}
	if !delta.empty() {
		for _, m := range delta.add {
			res.Stats.SetChanges += len(m)
		}
		for _, m := range delta.del {
			res.Stats.SetChanges += len(m)
		}
		if err := p.k.IPSets.Restore(ctx, delta.restore(p.cfg.Family)); err != nil {
			errs = append(errs, fmt.Errorf("updating ipsets: %w", err))
		}
	}
	return errors.Join(errs...)
}

func sortedAddrDelta(d map[netip.Addr]int, sign int) []netip.Addr {
	var out []netip.Addr
	for a, n := range d {
		if (sign > 0 && n > 0) || (sign < 0 && n < 0) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func unionAddrs(a, b *Fragment) []netip.Addr {
	var out []netip.Addr
	for _, f := range []*Fragment{a, b} {
		if f != nil {
			out = append(out, f.Addresses...)
		}
	}
	return out
}

func unionEntries(a, b *Fragment) []SetEntry {
	var out []SetEntry
	for _, f := range []*Fragment{a, b} {
		if f != nil {
			out = append(out, f.Entries...)
		}
	}
	return out
}

// syncServers applies one service port's virtual-server changes.
func (p *Proxier) syncServers(name endpoints.ServicePortName, old, next *Fragment, st *Stats, res *SyncResult) error {
	var errs []error
	wanted := map[Key]bool{}
	if next != nil {
		for _, ds := range next.Servers {
			wanted[ds.Key] = true
			a := p.servers[ds.Key]
			switch {
			case a != nil && a.owner != name:
				res.ServiceErrors = append(res.ServiceErrors,
					fmt.Errorf("%s: virtual server %s is already used by %s; skipped", name, ds.Key, a.owner))
			case a == nil:
				added, err := p.addServer(name, ds, st)
				if added != nil {
					p.servers[ds.Key] = added
				}
				if err != nil {
					errs = append(errs, err)
				}
			default:
				if !a.vs.SameSettings(&ds.VirtualServer) {
					if err := p.k.IPVS.UpdateVirtualServer(ds.VirtualServer); err != nil {
						errs = append(errs, err)
						continue
					}
					a.vs = ds.VirtualServer
					st.Updated++
				}
				if err := p.syncReal(a, ds.RealServers, st); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if old != nil {
		for _, ds := range old.Servers {
			a := p.servers[ds.Key]
			if wanted[ds.Key] || a == nil || a.owner != name {
				continue
			}
			if err := p.k.IPVS.DeleteVirtualServer(ds.Key); err != nil {
				errs = append(errs, err)
				continue
			}
			st.Deleted++
			delete(p.servers, ds.Key)
			delete(p.terminating, ds.Key)
		}
	}
	return errors.Join(errs...)
}

// TerminationResult describes one CheckTerminating pass: Deleted names the real
// servers deleted, as "VS -> IP:PORT".
type TerminationResult = proxy.TerminationResult

// CheckTerminating deletes each draining real server whose connections have all ended
// (ActiveConns+InactiveConns = 0) or that has drained for longer than the grace
// period. The controller calls it periodically; it reads only the virtual servers that
// have draining real servers.
func (p *Proxier) CheckTerminating(ctx context.Context) (TerminationResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var res TerminationResult
	var errs []error
	now := p.now()
	for _, k := range slices.SortedFunc(maps.Keys(p.terminating), Key.Compare) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		drained := p.terminating[k]
		status, err := p.k.IPVS.RealServers(k)
		if err != nil {
			errs = append(errs, err)
			res.Remaining += len(drained)
			continue
		}
		byAddr := map[netip.AddrPort]RealServerStatus{}
		for _, s := range status {
			byAddr[s.Addr] = s
		}
		for _, addr := range slices.SortedFunc(maps.Keys(drained), netip.AddrPort.Compare) {
			s, ok := byAddr[addr]
			if ok && s.Weight == 0 && s.ActiveConns+s.InactiveConns > 0 && now.Sub(drained[addr]) < p.cfg.gracePeriod() {
				res.Remaining++
				continue
			}
			if ok && s.Weight == 0 {
				if err := p.k.IPVS.DeleteRealServer(k, addr); err != nil {
					errs = append(errs, err)
					res.Remaining++
					continue
				}
				res.Deleted = append(res.Deleted, k.String()+" -> "+addr.String())
			}
			// Gone already, or someone restored its weight: stop tracking it.
			p.stopTerminating(k, addr)
			if a := p.servers[k]; a != nil && (!ok || s.Weight == 0) {
				delete(a.real, addr)
			}
		}
	}
	return res, errors.Join(errs...)
}

// Terminating returns the draining real servers as "VS -> IP:PORT", sorted.
func (p *Proxier) Terminating() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k, m := range p.terminating {
		for addr := range m {
			out = append(out, k.String()+" -> "+addr.String())
		}
	}
	slices.Sort(out)
	return out
}

// Cleanup removes everything Switchyard's IPVS mode owns for cfg's family: its virtual
// servers (VIP on kube-ipvs0, or a node port named in its node-port sets), the dummy
// interface, the companion chains and hooks, and the ipsets. Virtual servers of other
// programs, and anything in the exclude CIDRs, are left alone. It works without a
// snapshot and is idempotent.
func (p *Proxier) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	own, _, err := p.readOwnership(ctx)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	var errs []error
	servers, err := p.k.IPVS.VirtualServers()
	if err != nil {
		errs = append(errs, err)
	}
	for _, vs := range servers {
		if !own.owns(vs.Key) {
			continue
		}
		if err := p.k.IPVS.DeleteVirtualServer(vs.Key); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range Hooks() {
		if err := p.k.IPTables.DeleteRule(ctx, h.Table, h.Chain, h.Args...); err != nil {
			errs = append(errs, err)
		}
	}
	// Flush every chain first so that no jump is left when one is deleted.
	var flush strings.Builder
	flush.WriteString("*filter\n")
	for _, c := range []string{ChainForward, ChainNodePort, ChainProxyFirewall, ChainSourceRangesFirewall, ChainIPVSFilter, ChainIPVSOutFilter} {
		if ok, _ := p.k.IPTables.ChainExists(ctx, xtables.TableFilter, xtables.Chain(c)); ok {
			flush.WriteString(":" + c + " - [0:0]\n")
		}
	}
	flush.WriteString("COMMIT\n*nat\n")
	for _, c := range []string{ChainServices, ChainPostrouting, ChainNodePort, ChainLoadBalancer, ChainMarkMasq} {
		if ok, _ := p.k.IPTables.ChainExists(ctx, xtables.TableNAT, xtables.Chain(c)); ok {
			flush.WriteString(":" + c + " - [0:0]\n")
		}
	}
	flush.WriteString("COMMIT\n")
	if err := p.k.IPTables.Restore(ctx, []byte(flush.String())); err != nil {
		errs = append(errs, err)
	}
	for _, c := range []string{ChainForward, ChainNodePort, ChainProxyFirewall, ChainSourceRangesFirewall, ChainIPVSFilter, ChainIPVSOutFilter} {
		if err := p.k.IPTables.DeleteChain(ctx, xtables.TableFilter, xtables.Chain(c)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range []string{ChainServices, ChainPostrouting, ChainNodePort, ChainLoadBalancer, ChainMarkMasq} {
		if err := p.k.IPTables.DeleteChain(ctx, xtables.TableNAT, xtables.Chain(c)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range SetSpecs {
		if err := p.k.IPSets.Destroy(ctx, SetName(s.Name, p.cfg.Family)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.k.Links.DeleteLink(DummyInterface); err != nil {
		errs = append(errs, err)
	}
	for _, table := range xtables.CanaryTables() {
		if err := p.k.IPTables.DeleteChain(ctx, table, xtables.ChainCanary); err != nil {
			errs = append(errs, err)
		}
	}
	p.state = proxy.NewSyncState(0, p.now)
	p.frags, p.servers, p.terminating = nil, nil, nil
	p.addrRefs, p.setRefs = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return nil
}
