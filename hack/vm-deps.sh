#!/usr/bin/env bash
# Installs what test/vm needs to boot a throwaway QEMU guest with a real IPVS kernel, and fetches
# Debian's kernel package into .cache/vm/ (git-ignored). Idempotent: a rerun with everything in
# place does no apt work and no download.
#
# Layout it leaves behind (test/vm reads it; see docs/ipvs-vm.md):
#   .cache/vm/<kernel-package>_<version>/boot/vmlinuz-<kver>   the compressed kernel
#   .cache/vm/<kernel-package>_<version>/boot/vmlinux-<kver>   the same kernel, decompressed
#   .cache/vm/<kernel-package>_<version>/lib/modules/<kver>/   plain .ko modules
#   .cache/vm/kernel -> <kernel-package>_<version>             the version in use
#
# Never installs the kernel into / and never touches the host's network configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$(pwd)
cache_dir=${SWITCHYARD_VM_CACHE:-$repo_root/.cache/vm}

# Host packages: the emulator, the guest's userland, and the tools whose binaries (with their
# shared libraries) are copied into the guest.
host_packages=(qemu-system-x86 cpio busybox-static iptables ipset iproute2 conntrack xz-utils zstd)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${host_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
lists_fresh=false
if [ ${#missing[@]} -gt 0 ]; then
  echo "vm-deps: installing ${missing[*]}"
  as_root apt-get update -qq
  lists_fresh=true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The concrete kernel package behind the linux-image-amd64 metapackage, e.g.
# linux-image-6.1.0-56-amd64. Refresh the package lists once if apt does not know it.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
kpkg=$(kernel_package || true)
if [ -z "$kpkg" ] && [ "$lists_fresh" = false ]; then
  as_root apt-get update -qq
  lists_fresh=true
  kpkg=$(kernel_package || true)
fi
if [ -z "$kpkg" ]; then
  echo "vm-deps: cannot resolve the package behind linux-image-amd64" >&2
  exit 1
fi
kver_pkg=$(apt-cache policy "$kpkg" | awk '$1 == "Candidate:" { print $2 }')
if [ -z "$kver_pkg" ] || [ "$kver_pkg" = "(none)" ]; then
  echo "vm-deps: no candidate version for $kpkg" >&2
  exit 1
fi

kernel_dir="$cache_dir/${kpkg}_${kver_pkg}"
stamp="$kernel_dir/.complete"
if [ -f "$stamp" ]; then
  echo "vm-deps: kernel $kpkg $kver_pkg already in $kernel_dir"
else
  echo "vm-deps: fetching $kpkg $kver_pkg"
  mkdir -p "$cache_dir"
  work=$(mktemp -d "$cache_dir/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # _apt cannot write into a private temp dir; download as the calling user instead.
  (cd "$work" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$kpkg=$kver_pkg" >/dev/null)
  deb=$(ls "$work"/*.deb)
  mkdir -p "$work/root"
  dpkg -x "$deb" "$work/root"

  # busybox insmod reads only plain .ko files; newer kernels ship compressed modules.
  find "$work/root/lib/modules" -name '*.ko.xz' -exec xz -d {} +
  find "$work/root/lib/modules" -name '*.ko.zst' -exec zstd -q -d --rm {} +

  # Decompress the kernel once: booting the ELF vmlinux (PVH entry) skips 2-3 s of emulated
  # decompression per boot. The payload starts at the first compression magic in the bzImage.
  vmlinuz=$(ls "$work"/root/boot/vmlinuz-*)
  vmlinux=${vmlinuz/vmlinuz-/vmlinux-}
  extract() { # magic-as-grep-pattern decompressor...
    local offset
    for offset in $(LC_ALL=C grep -aboP "$1" "$vmlinuz" | cut -d: -f1); do
      shift_args=("${@:2}")
      if tail -c +$((offset + 1)) "$vmlinuz" | "${shift_args[@]}" >"$vmlinux" 2>/dev/null ||
        [ -s "$vmlinux" ]; then
        if head -c 4 "$vmlinux" | grep -q 'ELF'; then return 0; fi
      fi
    done
    rm -f "$vmlinux"
    return 1
  }
  extract '\xfd\x37\x7a\x58\x5a\x00' xz -dc ||
    extract '\x1f\x8b\x08' gzip -dc ||
    extract '\x28\xb5\x2f\xfd' zstd -dc ||
    echo "vm-deps: could not decompress $vmlinuz; the harness will boot the bzImage" >&2

  rm -rf "$kernel_dir"
  mv "$work/root" "$kernel_dir"
  echo "$kpkg $kver_pkg" >"$kernel_dir/.complete"
  rm -rf "$work"
  trap - EXIT
fi
ln -sfn "$(basename "$kernel_dir")" "$cache_dir/kernel"
# Drop kernels of earlier versions: each unpacked package is about 430 MB.
for old in "$cache_dir"/linux-image-*; do
  if [ -d "$old" ] && [ "$old" != "$kernel_dir" ]; then rm -rf "$old"; fi
done
echo "vm-deps: kernel ready: $cache_dir/kernel -> $(basename "$kernel_dir")"
