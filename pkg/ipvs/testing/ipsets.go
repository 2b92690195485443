package testing

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/switchyard-io/switchyard/pkg/fault"
	"github.com/switchyard-io/switchyard/pkg/ipvs"
)

type fakeSet struct {
	typ     ipvs.SetType
	family  string // "inet", "inet6", or "" for bitmap:port
	members map[string]struct{}
}

// IPSets is a strict fake of ipvs.IPSets. Restore parses `ipset restore` input line by
// line like the program: create, add, del, flush, swap, destroy, with -exist; it
// checks members against the set's type and family, and stops at the first failing
// line, leaving the earlier lines applied. FailNext(method, err) makes the next call
// of one of its ipvs.IPSets methods fail with err before it changes anything.
type IPSets struct {
	*fault.Injector

	mu   sync.Mutex
	sets map[string]*fakeSet
	ops  int
}

var _ ipvs.IPSets = &IPSets{}

// NewIPSets returns a fake with no sets.
func NewIPSets() *IPSets {
	return &IPSets{Injector: fault.New("Restore", "Entries", "Destroy"), sets: map[string]*fakeSet{}}
}

// Ops returns how many create/add/del/swap/destroy/flush commands were applied.
func (f *IPSets) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// Names returns the names of the sets, sorted.
func (f *IPSets) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.sets))
}

// Restore implements ipvs.IPSets.
func (f *IPSets) Restore(ctx context.Context, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Take("Restore"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(payload))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if err := f.apply(strings.Fields(text)); err != nil {
			return fmt.Errorf("ipset restore: line %d %q: %w", line, text, err)
		}
	}
	return nil
}

func (f *IPSets) apply(fields []string) error {
	exist := false
	if fields[len(fields)-1] == "-exist" {
		exist, fields = true, fields[:len(fields)-1]
	}
	if len(fields) < 2 {
		return fmt.Errorf("missing set name")
	}
	cmd, name, args := fields[0], fields[1], fields[2:]
	if len(name) > 31 {
		return fmt.Errorf("set name %q longer than 31", name)
	}
	set := f.sets[name]
	switch cmd {
	case "create":
		if len(args) < 1 {
			return fmt.Errorf("create needs a type")
		}
		s := &fakeSet{typ: ipvs.SetType(args[0]), members: map[string]struct{}{}}
		switch s.typ {
		case ipvs.HashIP, ipvs.HashIPPort, ipvs.HashIPPortIP, ipvs.HashIPPortNet:
			s.family = "inet"
		case ipvs.BitmapPort:
		default:
			return fmt.Errorf("unknown set type %q", args[0])
		}
		opts := args[1:]
		for i := 0; i < len(opts); i += 2 {
			if i+1 >= len(opts) {
				return fmt.Errorf("option %s needs a value", opts[i])
			}
			switch opts[i] {
			case "family":
				if s.typ == ipvs.BitmapPort || (opts[i+1] != "inet" && opts[i+1] != "inet6") {
					return fmt.Errorf("bad family %q for %s", opts[i+1], s.typ)
				}
				s.family = opts[i+1]
			case "hashsize", "maxelem":
				if s.typ == ipvs.BitmapPort {
					return fmt.Errorf("%s is not a %s option", opts[i], s.typ)
				}
			case "range":
				if s.typ != ipvs.BitmapPort || opts[i+1] != "0-65535" {
					return fmt.Errorf("bad range %q for %s", opts[i+1], s.typ)
				}
			default:
				return fmt.Errorf("unknown option %q", opts[i])
			}
		}
		if set != nil {
			if exist && set.typ == s.typ && set.family == s.family {
				return nil
			}
			return fmt.Errorf("set %s already exists", name)
		}
		f.sets[name] = s
	case "add", "del":
		if set == nil {
			return fmt.Errorf("set %s does not exist", name)
		}
		if len(args) != 1 {
			return fmt.Errorf("%s needs exactly one member", cmd)
		}
		member, err := normalize(set, args[0])
		if err != nil {
			return err
		}
		_, has := set.members[member]
		switch {
		case cmd == "add" && has && !exist:
			return fmt.Errorf("element %s is already added to %s", member, name)
		case cmd == "del" && !has && !exist:
			return fmt.Errorf("element %s is not in %s", member, name)
		case cmd == "add":
			set.members[member] = struct{}{}
		default:
			delete(set.members, member)
		}
	case "flush":
		if set == nil {
			return fmt.Errorf("set %s does not exist", name)
		}
		set.members = map[string]struct{}{}
	case "swap":
		if len(args) != 1 {
			return fmt.Errorf("swap needs two sets")
		}
		other := f.sets[args[0]]
		if set == nil || other == nil {
			return fmt.Errorf("swap %s %s: set does not exist", name, args[0])
		}
		if set.typ != other.typ || set.family != other.family {
			return fmt.Errorf("swap %s %s: the sets are of different types", name, args[0])
		}
		f.sets[name], f.sets[args[0]] = other, set
	case "destroy":
		if set == nil {
			if exist {
				return nil
			}
			return fmt.Errorf("set %s does not exist", name)
		}
		delete(f.sets, name)
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	f.ops++
	return nil
}

// normalize checks a member against the set's type and family and returns it in the
// form `ipset save` prints.
func normalize(set *fakeSet, member string) (string, error) {
	addr := func(s string) (netip.Addr, error) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return ip, fmt.Errorf("bad address %q", s)
		}
		if (set.family == "inet") != ip.Is4() {
			return ip, fmt.Errorf("address %s is not of family %s", ip, set.family)
		}
		return ip, nil
	}
	protoPort := func(s string) error {
		proto, port, ok := strings.Cut(s, ":")
		if !ok || (proto != "tcp" && proto != "udp" && proto != "sctp") {
			return fmt.Errorf("bad proto:port %q", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("bad port in %q", s)
		}
		return nil
	}
	parts := strings.Split(member, ",")
	want := map[ipvs.SetType]int{ipvs.HashIP: 1, ipvs.HashIPPort: 2, ipvs.HashIPPortIP: 3, ipvs.HashIPPortNet: 3, ipvs.BitmapPort: 1}[set.typ]
	if len(parts) != want {
		return "", fmt.Errorf("member %q does not fit %s", member, set.typ)
	}
	switch set.typ {
	case ipvs.BitmapPort:
		if n, err := strconv.Atoi(member); err != nil || n < 0 || n > 65535 {
			return "", fmt.Errorf("bad port %q", member)
		}
		return member, nil
	}
	if _, err := addr(parts[0]); err != nil {
		return "", err
	}
	if len(parts) > 1 {
		if err := protoPort(parts[1]); err != nil {
			return "", err
		}
	}
	if len(parts) > 2 {
		if set.typ == ipvs.HashIPPortNet {
			p, err := netip.ParsePrefix(parts[2])
			if err != nil || (set.family == "inet") != p.Addr().Is4() {
				return "", fmt.Errorf("bad net %q", parts[2])
			}
			parts[2] = p.Masked().String()
		} else if _, err := addr(parts[2]); err != nil {
			return "", err
		}
	}
	return strings.Join(parts, ","), nil
}

// Entries implements ipvs.IPSets.
func (f *IPSets) Entries(ctx context.Context, name string) ([]string, error) {
	if err := f.Take("Entries"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	set, ok := f.sets[name]
	if !ok {
		return nil, fmt.Errorf("ipset %s: %w", name, ipvs.ErrNoSet)
	}
	return slices.Sorted(maps.Keys(set.members)), nil
}

// Destroy implements ipvs.IPSets.
func (f *IPSets) Destroy(ctx context.Context, name string) error {
	if err := f.Take("Destroy"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sets[name]; ok {
		f.ops++
		delete(f.sets, name)
	}
	return nil
}
