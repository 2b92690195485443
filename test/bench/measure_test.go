package bench

import (
	"math"
	"testing"
)

func TestParseHistogram(t *testing.T) {
	const metrics = `# HELP x
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="0.25"} 3
kubeproxy_network_programming_duration_seconds_sum{ip_family="IPv4"} 1.5
kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"} 3
kubeproxy_network_programming_duration_seconds_sum{ip_family="IPv6"} 0.5
kubeproxy_network_programming_duration_seconds_count{ip_family="IPv6"} 1
switchyard_restore_payload_bytes_sum{sync="full"} 1000
switchyard_restore_payload_bytes_count{sync="full"} 1
switchyard_restore_payload_bytes_sum{sync="partial"} 300
switchyard_restore_payload_bytes_count{sync="partial"} 3
plain_sum 2
plain_count 4
`
	for _, tc := range []struct {
		name, labels string
		want         Histogram
	}{
		{"kubeproxy_network_programming_duration_seconds", "", Histogram{Sum: 2, Count: 4}},
		{"kubeproxy_network_programming_duration_seconds", `ip_family="IPv4"`, Histogram{Sum: 1.5, Count: 3}},
		{"switchyard_restore_payload_bytes", `sync="partial"`, Histogram{Sum: 300, Count: 3}},
		{"plain", "", Histogram{Sum: 2, Count: 4}},
		{"plain", `x="y"`, Histogram{}},
	} {
		if got := ParseHistogram(metrics, tc.name, tc.labels); got != tc.want {
			t.Errorf("ParseHistogram(%s, %q) = %+v, want %+v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	values := []float64{5, 1, 4, 2, 3}
	for q, want := range map[float64]float64{0.5: 3, 0.9: 5, 0.2: 1, 1: 5} {
		if got := Quantile(values, q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if !math.IsNaN(Quantile(nil, .5)) {
		t.Error("Quantile of nothing is not NaN")
	}
}

func TestParseScale(t *testing.T) {
	if s, err := ParseScale("10000x2"); err != nil || s != (Scale{10000, 2}) {
		t.Errorf("ParseScale = %v, %v", s, err)
	}
	if _, err := ParseScale("10k"); err == nil {
		t.Error("ParseScale(10k) succeeded")
	}
}
