package xtables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// BackendReport is what DetectBackend found on the host.
type BackendReport struct {
	// Chosen is the backend to use.
	Chosen Backend
	// Reason says why, for the log.
	Reason string
	// KubeChains, KubeletChains and Rules count, per backend, the proxy's KUBE-
	// chains, kubelet's KUBE- chains and all rules seen.
	KubeChains, KubeletChains, Rules map[Backend]int
}

// kubeletChains are created by kubelet, not by a proxy; KUBE-IPTABLES-HINT exists
// precisely to tell other programs which backend kubelet chose.
var kubeletChains = []string{"KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-FIREWALL"}

// ErrBothBackends is returned when KUBE- chains exist in both backends: rules in the
// one not chosen would keep matching packets, so Switchyard refuses to guess
// (kubernetes#71305, #112477).
var ErrBothBackends = errors.New("KUBE- chains exist in both the legacy and the nft iptables backends; remove one set (switchyard cleanup --iptables-backend=...) and restart")

// DetectBackend chooses the backend the host already uses: the one holding KUBE- chains
// (a kube-proxy or Switchyard ran before), otherwise the one with more rules (kubelet,
// the CNI plugin and the host firewall write there), otherwise nft. It reads both
// families with the save programs, so it must run in the node's network namespace.
func DetectBackend(ctx context.Context) (*BackendReport, error) {
	report := &BackendReport{KubeChains: map[Backend]int{}, KubeletChains: map[Backend]int{}, Rules: map[Backend]int{}}
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		for _, prog := range []string{"iptables-" + string(b) + "-save", "ip6tables-" + string(b) + "-save"} {
			out, err := exec.CommandContext(ctx, prog).Output()
			if err != nil {
				var notFound *exec.Error
				if errors.As(err, &notFound) {
					continue
				}
				return nil, fmt.Errorf("%s: %w", prog, err)
			}
			kube, kubelet, rules := countSave(out)
			report.KubeChains[b] += kube
			report.KubeletChains[b] += kubelet
			report.Rules[b] += rules
		}
	}
	nft, legacy := report.KubeChains[BackendNFT], report.KubeChains[BackendLegacy]
	switch {
	case nft > 0 && legacy > 0:
		return report, fmt.Errorf("%w (nft: %d, legacy: %d)", ErrBothBackends, nft, legacy)
	case nft > 0:
		report.Chosen, report.Reason = BackendNFT, "KUBE- chains found in nft"
	case legacy > 0:
		report.Chosen, report.Reason = BackendLegacy, "KUBE- chains found in legacy"
	case report.KubeletChains[BackendNFT] > 0 && report.KubeletChains[BackendLegacy] == 0:
		report.Chosen, report.Reason = BackendNFT, "kubelet's chains are in nft"
	case report.KubeletChains[BackendLegacy] > 0 && report.KubeletChains[BackendNFT] == 0:
		report.Chosen, report.Reason = BackendLegacy, "kubelet's chains are in legacy"
	case report.Rules[BackendLegacy] > report.Rules[BackendNFT]:
		report.Chosen, report.Reason = BackendLegacy, "the host's rules are in legacy"
	default:
		report.Chosen, report.Reason = BackendNFT, "the host's rules are in nft, or there are none"
	}
	return report, nil
}

// countSave counts the proxy's and kubelet's KUBE- chains and the rules in
// iptables-save output.
func countSave(out []byte) (kubeChains, kubeletChainCount, rules int) {
	for line := range bytes.Lines(out) {
		switch {
		case bytes.HasPrefix(line, []byte(":KUBE-")):
			name, _, _ := strings.Cut(string(line[1:]), " ")
			if slices.Contains(kubeletChains, name) {
				kubeletChainCount++
			} else {
				kubeChains++
			}
		case bytes.HasPrefix(line, []byte("-A ")):
			rules++
		}
	}
	return kubeChains, kubeletChainCount, rules
}

// ParseBackend parses the --iptables-backend flag: auto (""), nft or legacy.
func ParseBackend(s string) (Backend, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return "", nil
	case "nft":
		return BackendNFT, nil
	case "legacy":
		return BackendLegacy, nil
	}
	return "", fmt.Errorf("iptables backend %q: want auto, nft or legacy", s)
}
