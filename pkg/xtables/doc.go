// Package xtables is Switchyard's library for the xtables tools (iptables and
// ip6tables, over either backend): what both proxy modes need from the kernel's
// iptables, and nothing about how a mode lays out its rules. kube-proxy keeps the
// same split between pkg/util/iptables and pkg/proxy/iptables.
//
// It holds Interface, the narrow seam the modes program through; Exec, its
// implementation over iptables-restore/iptables-save with a bounded xtables lock
// wait; backend detection (DetectBackend, ParseBackend); typed Table and Chain
// names; Hook and EnsureHooks for the jumps from built-in chains; the canary
// chain; and MasqueradeRules, the KUBE-POSTROUTING / KUBE-MARK-MASQ /
// KUBE-FORWARD rules both modes write.
//
// Beneath it: ruleset, a strict in-memory model of iptables tables; tracer,
// which walks a packet through a ruleset; and testing, a strict Fake of
// Interface built on ruleset.
package xtables
