package bench

import (
	"encoding/json"
	"math"
	"os"
)

// Results is one benchmark run: every scale and contender measured, plus the floors.
type Results struct {
	Started     string         `json:"started"`
	Host        string         `json:"host"`
	Kernel      string         `json:"kernel"`
	Commit      string         `json:"commit"`
	LoadAtStart string         `json:"load_at_start"`
	Notes       []string       `json:"notes,omitempty"`
	Scales      []*ScaleResult `json:"scales"`
}

// ScaleResult holds one scale's contenders and floors.
type ScaleResult struct {
	Scale        Scale        `json:"scale"`
	LoadSeconds  float64      `json:"load_seconds"`
	NATLines     int          `json:"nat_lines,omitempty"`
	NATChains    int          `json:"nat_chains,omitempty"`
	NATBytes     int          `json:"nat_bytes,omitempty"`
	Floors       []Floor      `json:"floors,omitempty"`
	Contenders   []*Contender `json:"contenders"`
	LoadAverages []string     `json:"load_averages,omitempty"`

	// NFTLines, NFTChains and NFTBytes size the `nft list table ip kube-proxy` of the
	// nftables-mode contenders (TestNFTablesBench), by contender name.
	NFTLines  map[string]int `json:"nft_lines,omitempty"`
	NFTChains map[string]int `json:"nft_chains,omitempty"`
	NFTBytes  map[string]int `json:"nft_bytes,omitempty"`
}

// Floor is a bare iptables measurement at a scale.
type Floor struct {
	Name    string   `json:"name"`
	Seconds *float64 `json:"seconds,omitempty"`
	Note    string   `json:"note,omitempty"`
}

// Contender is one proxy at one scale.
type Contender struct {
	Name string `json:"name"`
	// ColdStartSeconds is from process start on an empty table to every benchmark
	// Service programmed; nil when not programmed within ColdStartCapSeconds.
	ColdStartSeconds    *float64 `json:"cold_start_seconds,omitempty"`
	ColdStartCapSeconds float64  `json:"cold_start_cap_seconds"`
	// IncrementalSeconds is set when the cold start was capped and the Services were
	// then revealed to a fresh instance a batch at a time instead.
	IncrementalSeconds *float64 `json:"incremental_seconds,omitempty"`
	// ChangeSeconds are the one-endpoint-change latencies, write returned → jump in
	// the kernel.
	ChangeSeconds []float64 `json:"change_seconds,omitempty"`
	// ProgrammingSeconds are the proxy's own network programming durations for the
	// same changes (mean over the histogram delta of each change).
	ProgrammingSeconds []float64 `json:"programming_seconds,omitempty"`
	AddSeconds         []float64 `json:"add_seconds,omitempty"`
	// NewServiceSeconds are the times to a new service: a Service and its
	// EndpointSlice created back to back, both create calls returned → a real TCP
	// connection to its cluster IP from the node succeeded.
	NewServiceSeconds []float64 `json:"new_service_seconds,omitempty"`
	// ChurnSeconds are the latencies of the churn phase's endpoint changes, write
	// returned → the new endpoint's chain in the kernel (nft monitor), one per change;
	// ChurnRate the changes per second written, ChurnMissed the changes that failed
	// or were never seen, ChurnProgrammingMean the proxy's own network programming
	// mean over the phase.
	ChurnSeconds         []float64 `json:"churn_seconds,omitempty"`
	ChurnRate            float64   `json:"churn_rate,omitempty"`
	ChurnMissed          int       `json:"churn_missed,omitempty"`
	ChurnProgrammingMean *float64  `json:"churn_programming_mean_seconds,omitempty"`
	DeleteSeconds        []float64 `json:"delete_seconds,omitempty"`
	// BurstSize changes written in parallel; BurstSeconds from the first write to all
	// programmed (nil: not within the cap).
	BurstSize    int      `json:"burst_size,omitempty"`
	BurstSeconds *float64 `json:"burst_seconds,omitempty"`
	// PartialPayloadBytes is the mean switchyard_restore_payload_bytes{sync="partial"}
	// over the one-change phase (Switchyard only).
	PartialPayloadBytes *float64   `json:"partial_payload_bytes,omitempty"`
	FullPayloadBytes    *float64   `json:"full_payload_bytes,omitempty"`
	Proc                ProcStats  `json:"proc"`
	ColdProc            *ProcStats `json:"cold_proc,omitempty"`
	Profiles            []string   `json:"profiles,omitempty"`
	Notes               []string   `json:"notes,omitempty"`

	// ColdFullSyncSeconds is the proxy's own
	// kubeproxy_sync_full_proxy_rules_duration_seconds{ip_family="IPv4"} of its first
	// sync at the cold start (TestNFTablesBench).
	ColdFullSyncSeconds *float64 `json:"cold_full_sync_seconds,omitempty"`
	// RestartSeconds are full syncs seen from outside (TestNFTablesBench): the proxy
	// restarted on its populated table, whose first and last benchmark service chains
	// were flushed while it was down; process start → both programmed again.
	RestartSeconds []float64 `json:"restart_seconds,omitempty"`
	// FullSyncSeconds are the same restarts' first syncs as the proxy times them
	// (kubeproxy_sync_full_proxy_rules_duration_seconds{ip_family="IPv4"}).
	FullSyncSeconds []float64 `json:"full_sync_seconds,omitempty"`
	// RestartProc is the last restarted instance's figures once its full sync is done.
	RestartProc *ProcStats `json:"restart_proc,omitempty"`
}

// Opt returns a pointer to v, or nil for NaN.
func Opt(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// Write stores r as indented JSON.
func (r *Results) Write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadResults loads a results.json.
func ReadResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
