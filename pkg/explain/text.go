package explain

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteText prints the explanation for a person: one labelled section per
// question (which service, which path, which endpoints, masquerade, affinity,
// verdict), in words rather than rule syntax.
func (e *Explanation) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "Packet:     %s\n", e.Packet)
	if e.Service != nil {
		fmt.Fprintf(b, "Service:    %s, reached through its %s\n", e.Service, e.Service.Kind.words())
	} else {
		fmt.Fprintf(b, "Service:    none matches this address and port\n")
	}
	if len(e.Steps) > 0 {
		fmt.Fprintf(b, "Path (%s rules):\n", e.Mode)
		for i, s := range e.Steps {
			fmt.Fprintf(b, "  %2d. %s\n      %s\n", i+1, s.Where, s.What)
		}
	}
	if len(e.Endpoints) > 0 {
		fmt.Fprintln(b, "Endpoints:")
		if e.Scheduler != "" {
			fmt.Fprintf(b, "  chosen by the IPVS %q scheduler\n", e.Scheduler)
		}
		for _, ep := range e.Endpoints {
			fmt.Fprintf(b, "  %s\n", endpointLine(ep))
		}
	}
	// Masquerade and affinity only matter for a packet that gets somewhere.
	if e.Verdict == Delivered || e.Masquerade || e.MasqueradeReason != "" {
		masq := "no"
		if e.Masquerade {
			masq = "yes"
		}
		fmt.Fprintf(b, "Masquerade: %s", masq)
		if e.MasqueradeReason != "" {
			fmt.Fprintf(b, ": %s", e.MasqueradeReason)
		}
		fmt.Fprintln(b)
	}
	if e.Affinity != nil {
		fmt.Fprintf(b, "Affinity:   ClientIP: a client that connected within the last %d s goes back to the endpoint it used then\n",
			e.Affinity.TimeoutSeconds)
	} else if e.Service != nil && e.Verdict == Delivered {
		fmt.Fprintln(b, "Affinity:   none: every new connection picks an endpoint afresh")
	}
	fmt.Fprintf(b, "Verdict:    %s: %s\n", e.Verdict, e.Reason)
	return b.Flush()
}

// endpointLine formats one candidate endpoint: address, chance or weight,
// then what is known about where it runs.
func endpointLine(ep Endpoint) string {
	parts := []string{fmt.Sprintf("%-22s", ep.Address)}
	switch {
	case ep.Weight != nil:
		parts = append(parts, fmt.Sprintf("weight %d", *ep.Weight))
	case ep.Probability > 0:
		parts = append(parts, fmt.Sprintf("%5.1f%%", ep.Probability*100))
	}
	var where []string
	if ep.Pod != "" {
		where = append(where, "pod "+ep.Pod)
	}
	if ep.Node != "" {
		where = append(where, "on node "+ep.Node)
	}
	if ep.Local {
		where = append(where, "(this node)")
	}
	if len(where) > 0 {
		parts = append(parts, strings.Join(where, " "))
	}
	if ep.Masquerade {
		parts = append(parts, "[masqueraded]")
	}
	return strings.Join(parts, "  ")
}
