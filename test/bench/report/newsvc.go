package main

import (
	"fmt"
	"strings"

	"github.com/switchyard-io/switchyard/test/bench"
)

// newServiceTable is the table of the time to a new service and of latency under
// churn (issue 12 items 4 and 3), or "" when no contender measured them.
func newServiceTable(scales []*bench.ScaleResult, commits map[*bench.ScaleResult]string) string {
	var b strings.Builder
	for _, s := range scales {
		floor := 0.0
		for _, f := range s.Floors {
			if f.Name == bench.FloorAddService && f.Seconds != nil {
				floor = *f.Seconds
			}
		}
		for _, c := range s.Contenders {
			if len(c.NewServiceSeconds) == 0 && len(c.ChurnSeconds) == 0 {
				continue
			}
			newService, ratio := "–", "–"
			if n := len(c.NewServiceSeconds); n > 0 {
				p50 := bench.Quantile(c.NewServiceSeconds, .5)
				newService = fmt.Sprintf("%s / %s (%d)", duration(p50), duration(bench.Quantile(c.NewServiceSeconds, .9)), n)
				if floor > 0 {
					ratio = fmt.Sprintf("%.2f×", p50/floor)
				}
			}
			churn := "–"
			if n := len(c.ChurnSeconds); n > 0 {
				churn = fmt.Sprintf("%s / %s (%d at %.1f/s, %d missed)", duration(bench.Quantile(c.ChurnSeconds, .5)),
					duration(bench.Quantile(c.ChurnSeconds, .99)), n, c.ChurnRate, c.ChurnMissed)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", s.Scale, commits[s], c.Name, newService, ratio, churn, seconds(c.ChurnProgrammingMean))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "\nTime to a new service (Service and EndpointSlice created back to back; both creates returned → a real TCP connection to the cluster IP from the node) " +
		"and endpoint churn (distinct Services, write returned → the new endpoint's chain committed in the kernel, seen with `nft monitor`). " +
		"The floor is \"" + bench.FloorAddService + "\" below.\n\n" +
		"| scale | commit | contender | new service p50 / p90 (n) | p50 / floor | churn p50 / p99 (n, rate, missed) | proxy's own programming mean under churn |\n" +
		"|---|---|---|---|---|---|---|\n" + b.String()
}
