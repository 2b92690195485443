// Package vm runs programs inside a small, throwaway QEMU guest that boots Debian's own kernel,
// so that code needing kernel features the host lacks (IPVS above all) can be tested against a
// real kernel.
//
// The guest has no disk. Each run builds an initramfs from two concatenated cpio archives: a
// cached base (static busybox, the host's iptables, ipset, iproute2 and conntrack with their
// shared libraries, and the kernel modules in dependency order) and a per-run part (a
// generated /init and the caller's files, typically a static `go test -c` binary). /init mounts
// the usual file systems, loads the modules, optionally configures QEMU user networking, runs
// the command, prints marker lines carrying its exit status on the serial console, and powers
// the guest off.
//
// hack/vm-deps.sh installs QEMU and the userland and unpacks the kernel into .cache/vm/kernel;
// docs/ipvs-vm.md describes the design, timings and limits. Without hardware virtualisation
// the guest runs under QEMU's software emulation (TCG), so absolute timings are many times
// slower than on hardware: compare contenders inside the same guest only.
package vm
