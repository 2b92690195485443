package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultModules are loaded in every guest: the IPVS core and the common schedulers, plus what
// an IPVS-mode proxy needs around it (iptables over nftables and legacy, NAT, ipset, conntrack
// over netlink, veth, bridge). The harness adds their dependencies, hard and soft, from the
// modules' .modinfo. The list is kept short on purpose: each insmod costs about 30 ms under
// emulation. Add more with Config.ExtraModules.
var DefaultModules = []string{
	"dummy", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_sh", "ip_vs_mh",
	"veth", "bridge", "br_netfilter",
	"ip_tables", "iptable_nat", "iptable_filter", "iptable_mangle",
	"xt_MASQUERADE", "xt_mark", "xt_comment", "xt_addrtype", "xt_conntrack", "xt_multiport",
	"xt_tcpudp", "xt_set", "xt_nat",
	"ip_set", "ip_set_hash_ip", "ip_set_hash_ipport", "ip_set_hash_ipportip", "ip_set_hash_ipportnet",
	"ip_set_hash_net", "ip_set_bitmap_port",
	"nf_tables", "nft_compat", "nft_chain_nat",
	"nf_conntrack_netlink",
}

// networkModules drive the guest's NIC. QEMU's virtio-net-pci is the cheapest device to emulate;
// Debian builds its driver (and the virtio PCI transport) as modules.
var networkModules = []string{"virtio_pci", "virtio_net"}

// hostTool is a dynamically linked program copied from the host into the guest, with the
// shared libraries ldd reports and the dynamic loader.
type hostTool struct {
	name     string
	required bool
	// links are extra names for the same program, in the same directory.
	links []string
}

var hostTools = []hostTool{
	{name: "xtables-nft-multi", required: true, links: []string{
		// Debian's default alternative: plain iptables is the nft backend.
		"iptables", "iptables-restore", "iptables-save",
		"ip6tables", "ip6tables-restore", "ip6tables-save",
		"iptables-nft", "iptables-nft-restore", "iptables-nft-save",
		"ip6tables-nft", "ip6tables-nft-restore", "ip6tables-nft-save",
	}},
	{name: "xtables-legacy-multi", required: true, links: []string{
		"iptables-legacy", "iptables-legacy-restore", "iptables-legacy-save",
		"ip6tables-legacy", "ip6tables-legacy-restore", "ip6tables-legacy-save",
	}},
	{name: "ipset", required: true},
	{name: "ip", required: true}, // iproute2: busybox ip has no netns support
	{name: "conntrack"},
	// Debian's busybox-static prefers its applets to programs on $PATH, in its shell and in its
	// env: "ip" in a busybox script runs busybox ip, not iproute2. So /bin/sh is the host's dash
	// (Debian's /bin/sh) and /init starts the command with the host's env (coreutils).
	{name: "dash", required: true, links: []string{"sh"}},
	{name: "env", required: true},
}

// hostDataFiles are small host files the tools read if present.
var hostDataFiles = []string{
	"/etc/protocols", "/etc/services", "/etc/ethertypes",
	"/etc/iproute2", "/usr/share/iproute2",
}

// xtablesDirs are where iptables looks for its extensions (dlopened, so ldd does not list them).
var xtablesDirs = []string{"/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib64/xtables", "/usr/lib/xtables"}

// searchPath is where host programs are looked for, independent of the caller's $PATH.
var searchPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// baseImage is the cacheable part of the initramfs: busybox, the host tools and the modules.
type baseImage struct {
	archive []byte   // a gzip-compressed newc cpio archive
	modules []Module // to insmod in this order
	// envPath is where coreutils env sits in the guest. /init starts the command with it:
	// busybox env would run its own applets in place of programs of the same name (ip).
	envPath string
}

// buildBase assembles the guest's file system apart from /init and the caller's files.
func buildBase(k *Kernel, modules []Module) (*baseImage, error) {
	t := newTree()
	h := &hostCopier{tree: t, done: map[string]bool{}}
	// Mirror the host's top-level layout first (on merged-/usr hosts /lib is a symlink to
	// usr/lib) so that libraries land where the dynamic loader looks for them.
	for _, dir := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
		if _, err := os.Lstat(dir); err == nil {
			if _, err := h.mirrorDir(dir); err != nil {
				return nil, err
			}
		}
	}
	for _, dir := range []string{"proc", "sys", "dev", "run", "tmp", "root", "etc", "usr/local/bin", "mnt"} {
		t.mkdirAll(dir)
	}
	t.addSymlink("var/run", "../run")
	// The kernel opens /dev/console for init before devtmpfs is mounted.
	t.addCharDev("dev/console", 5, 1)
	t.addCharDev("dev/null", 1, 3)
	t.addFile("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	t.addFile("etc/group", []byte("root:x:0:\n"), 0o644)
	t.addFile("etc/hosts", []byte("127.0.0.1 localhost\n::1 localhost\n"), 0o644)
	t.addFile("etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files dns\nservices: files\nprotocols: files\n"), 0o644)

	var errs []error
	toolPaths := map[string]string{}
	for _, tool := range hostTools {
		hostPath, err := lookHostPath(tool.name)
		if err != nil {
			if tool.required {
				errs = append(errs, fmt.Errorf("host program %s (run hack/vm-deps.sh): %w", tool.name, err))
			}
			continue
		}
		if err := h.copyProgram(hostPath, hostPath); err != nil {
			errs = append(errs, err)
			continue
		}
		toolPaths[tool.name] = hostPath
		for _, link := range tool.links {
			t.addSymlink(filepath.Join(filepath.Dir(hostPath), link), tool.name)
		}
	}
	for _, dir := range xtablesDirs {
		if err := h.copyXtables(dir); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range hostDataFiles {
		if _, err := os.Stat(p); err == nil {
			if err := h.copyHostTree(p, p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := addBusybox(t); err != nil {
		return nil, err
	}

	modDir := "/lib/modules/" + k.Release + "/"
	for _, m := range modules {
		data, err := os.ReadFile(filepath.Join(k.modulesDir, filepath.FromSlash(m.Path)))
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", m.Name, err)
		}
		t.addFile(modDir+m.Path, data, 0o644)
	}
	t.addFile(modDir+"modules.dep", modulesDep(modules), 0o644)
	if builtin, err := os.ReadFile(filepath.Join(k.modulesDir, "modules.builtin")); err == nil {
		t.addFile(modDir+"modules.builtin", builtin, 0o644)
	}

	archive, err := compressedCPIO(t)
	if err != nil {
		return nil, err
	}
	return &baseImage{archive: archive, modules: modules, envPath: toolPaths["env"]}, nil
}

// compressedCPIO renders a tree as a gzip-compressed newc archive. BestSpeed: the archive is
// built on every test run, and the guest's (emulated) inflate is not the bottleneck.
func compressedCPIO(t *tree) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := t.writeCPIO(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// addBusybox installs the static busybox as /bin/busybox with a symlink per applet, except
// where a real program (iproute2's ip, say) already sits.
func addBusybox(t *tree) error {
	hostPath, err := lookHostPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox-static (run hack/vm-deps.sh): %w", err)
	}
	if static, err := isStatic(hostPath); err != nil {
		return err
	} else if !static {
		return fmt.Errorf("%s is dynamically linked; install busybox-static", hostPath)
	}
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("busybox: %w", err)
	}
	t.addFile("/bin/busybox", data, 0o755)
	out, err := exec.Command(hostPath, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if !t.exists(applet) {
			t.addSymlink(applet, "/bin/busybox")
		}
	}
	return nil
}

func isStatic(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// lookHostPath finds a host program in the standard directories.
func lookHostPath(name string) (string, error) {
	for _, dir := range searchPath {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s: %w", name, strings.Join(searchPath, ":"), fs.ErrNotExist)
}

// hostCopier copies host files into the tree at the same paths, reproducing the symlinks
// on the way (lib -> usr/lib, libfoo.so.1 -> libfoo.so.1.2.3) so the guest sees the host's view.
type hostCopier struct {
	tree *tree
	done map[string]bool // host paths already copied
}

// mirrorDir reproduces the host directory dir, symlinks included, and returns its real path.
func (h *hostCopier) mirrorDir(dir string) (string, error) {
	real := "/"
	for _, part := range strings.Split(strings.Trim(filepath.Clean(dir), "/"), "/") {
		if part == "" {
			continue
		}
		next := filepath.Join(real, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", fmt.Errorf("mirroring %s: %w", dir, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			h.tree.mkdirAll(next)
			real = next
			continue
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("mirroring %s: %w", dir, err)
		}
		if !h.tree.exists(next) {
			h.tree.addSymlink(next, target)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(real, target)
		}
		if real, err = h.mirrorDir(target); err != nil {
			return "", err
		}
	}
	return real, nil
}

// copyHostFile copies one host file (following and reproducing symlinks) to the same path in
// the guest.
func (h *hostCopier) copyHostFile(p string) error {
	p = filepath.Clean(p)
	if h.done[p] {
		return nil
	}
	h.done[p] = true
	dir, err := h.mirrorDir(filepath.Dir(p))
	if err != nil {
		return err
	}
	full := filepath.Join(dir, filepath.Base(p))
	fi, err := os.Lstat(full)
	if err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(full)
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		h.tree.addSymlink(full, target)
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		return h.copyHostFile(target)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	h.tree.addFile(full, data, fi.Mode())
	return nil
}

// copyHostTree copies a host file or directory tree to guestPath.
func (h *hostCopier) copyHostTree(hostPath, guestPath string) error {
	return filepath.WalkDir(hostPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copying %s: %w", hostPath, err)
		}
		rel, err := filepath.Rel(hostPath, p)
		if err != nil {
			return err
		}
		dest := filepath.Join(guestPath, rel)
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		switch {
		case d.IsDir():
			h.tree.mkdirAll(dest)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("copying %s: %w", p, err)
			}
			h.tree.addSymlink(dest, target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("copying %s: %w", p, err)
			}
			h.tree.addFile(dest, data, info.Mode())
		}
		return nil
	})
}

// copyProgram copies a dynamically linked program to guestPath, and its shared libraries and
// dynamic loader to the host's paths.
func (h *hostCopier) copyProgram(hostPath, guestPath string) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("copying %s: %w", hostPath, err)
	}
	h.tree.addFile(guestPath, data, 0o755)
	return h.copyLibraries(hostPath)
}

// copyLibraries copies what ldd lists for an executable or shared object.
func (h *hostCopier) copyLibraries(p string) error {
	libs, err := lddLibraries(p)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if err := h.copyHostFile(lib); err != nil {
			return err
		}
	}
	return nil
}

// lddLibraries runs ldd on p and returns the absolute paths of the libraries and loader it
// lists (the vDSO has no file and is skipped).
func lddLibraries(p string) ([]string, error) {
	out, err := exec.Command("ldd", p).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", p, err, bytes.TrimSpace(out))
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", p, line)
		}
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
		if _, after, ok := strings.Cut(line, "=> "); ok {
			line = after
		}
		if lib, _, _ := strings.Cut(line, " "); strings.HasPrefix(lib, "/") {
			libs = append(libs, lib)
		}
	}
	return libs, nil
}

// copyXtables copies iptables' extension directory. Extensions are dlopened, so ldd on the
// programs misses them and the libraries they alone need (libnetfilter_conntrack, libpcap...).
// ldd runs only for extensions that need a library not already copied: it is slow per file.
func (h *hostCopier) copyXtables(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("xtables extensions: %w", err)
	}
	if h.done[real] {
		return nil
	}
	h.done[real] = true
	if err := h.copyHostTree(dir, dir); err != nil {
		return err
	}
	copied := map[string]bool{}
	for p := range h.done {
		copied[filepath.Base(p)] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("xtables extensions: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		f, err := elf.Open(p)
		if err != nil {
			continue // not an ELF object
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			continue
		}
		for _, soname := range needed {
			if !copied[soname] {
				if err := h.copyLibraries(p); err != nil {
					return err
				}
				for p := range h.done {
					copied[filepath.Base(p)] = true
				}
				break
			}
		}
	}
	return nil
}
