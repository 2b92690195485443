package bench

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// FloorAddService names the floor of the one restore that adds a service.
const FloorAddService = "one service added in one --noflush restore (its chains, -I KUBE-SERVICES 1), nft"

// AddServicePayload returns an iptables-restore --noflush input that adds one new
// Service to a loaded nat table the way a partial sync does: Service from's KUBE-SVC-
// chain and the KUBE-SEP- chains it jumps to, copied from saved (iptables-save -t nat)
// under Service to's chain names, and its KUBE-SERVICES rule inserted at the top (as
// Switchyard's partial render does, keeping the node-ports jump last) with clusterIP as
// destination. It is the floor of "the one restore that adds a service": what the
// kernel takes for that transaction alone, at the table's size.
func AddServicePayload(saved string, from, to int, clusterIP string) ([]byte, error) {
	oldService, newService := ServiceChain(from), ServiceChain(to)
	renames := map[string]string{oldService: newService}
	var serviceRules, dispatch []string
	for line := range strings.Lines(saved) {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "-A" {
			continue
		}
		switch {
		case fields[1] == oldService:
			serviceRules = append(serviceRules, line)
			if target := fields[len(fields)-1]; strings.HasPrefix(target, "KUBE-SEP-") {
				renames[target] = EndpointChain(to, fmt.Sprintf("10.247.%d.%d", len(renames)/256, len(renames)%256))
			}
		case fields[1] == "KUBE-SERVICES" && fields[len(fields)-1] == oldService:
			dispatch = append(dispatch, line)
		}
	}
	if len(serviceRules) == 0 || len(dispatch) == 0 {
		return nil, fmt.Errorf("%s or its KUBE-SERVICES rule is not in the saved table", oldService)
	}
	var endpointRules []string
	for line := range strings.Lines(saved) {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "-A" && renames[fields[1]] != "" && fields[1] != oldService {
			endpointRules = append(endpointRules, line)
		}
	}
	rename := func(line string) string {
		fields := strings.Fields(line)
		for k, field := range fields {
			if to, ok := renames[field]; ok {
				fields[k] = to
			}
		}
		return strings.Join(fields, " ") + "\n"
	}
	var out strings.Builder
	out.WriteString("*nat\n")
	for _, renamed := range slices.Sorted(maps.Values(renames)) {
		fmt.Fprintf(&out, ":%s - [0:0]\n", renamed)
	}
	for _, line := range serviceRules {
		out.WriteString(rename(line))
	}
	for _, line := range endpointRules {
		out.WriteString(rename(line))
	}
	for _, line := range dispatch {
		fields := strings.Fields(rename(line))
		for k := range fields {
			if fields[k] == "-d" && k+1 < len(fields) {
				fields[k+1] = clusterIP + "/32"
			}
		}
		// "-A KUBE-SERVICES rest" becomes "-I KUBE-SERVICES 1 rest".
		out.WriteString("-I KUBE-SERVICES 1 " + strings.Join(fields[2:], " ") + "\n")
	}
	out.WriteString("COMMIT\n")
	return []byte(out.String()), nil
}

// SEPSeen records when each KUBE-SEP- chain name first appeared in a stream of
// `nft monitor rules` lines: the kernel announces a rule once its transaction has
// committed, so the first "add rule" that names a new endpoint chain is the moment the
// change is programmed, seen from outside the proxy and without polling.
type SEPSeen struct {
	// Now stamps each line; time.Now when nil.
	Now   func() time.Time
	first map[string]time.Time
}

// Line records the KUBE-SEP- names an "add rule" line mentions.
func (s *SEPSeen) Line(line string) {
	if !strings.HasPrefix(line, "add rule ") {
		return
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	stamp := time.Time{}
	for _, field := range strings.Fields(line) {
		if !strings.HasPrefix(field, "KUBE-SEP-") {
			continue
		}
		if s.first == nil {
			s.first = map[string]time.Time{}
		}
		if _, ok := s.first[field]; ok {
			continue
		}
		if stamp.IsZero() {
			stamp = now()
		}
		s.first[field] = stamp
	}
}

// First returns when chain was first seen.
func (s *SEPSeen) First(chain string) (time.Time, bool) {
	t, ok := s.first[chain]
	return t, ok
}
